"""OpenAI image and file parts -> Converse ``image`` and ``document`` content blocks.

Bedrock takes both only as bytes (base64 in the JSON body), only in user turns, in the order
they come. A document is ``{"document": {"format", "name", "source": {"bytes"}}}`` and:

- ``format`` is one of pdf, csv, doc, docx, xls, xlsx, html, txt, md: read from the data URL's
  media type, or from the filename's extension when the media type says nothing
  (``application/octet-stream``);
- ``name`` may hold only ASCII letters and digits, single spaces, hyphens, parentheses and
  square brackets, 1-200 characters, and must be unique in the request (Bedrock answers
  "Messages can't contain duplicate document names" otherwise). ``DocumentNames`` derives it
  from the filename, deterministically, so a conversation re-sent with one more turn keeps
  every earlier name: the directory and a known extension are dropped, accents are stripped
  (é -> e), every run of whitespace becomes one space, every run of other characters one
  hyphen, and spaces and hyphens at either end go. A name with no letter or digit left, or no
  filename, becomes ``document-<n>`` (n counts the request's documents from 1). A name already
  taken (compared ignoring case) gets `` (2)``, `` (3)``, ...;
- at most five per request, each at most 4.5 MiB (Bedrock's limits), never empty.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from typing import Any

from chatgate.errors import InvalidRequestError
from chatgate.types import FilePart, ImagePart

__all__ = [
    "DOCUMENT_FORMATS",
    "IMAGE_FORMATS",
    "MAX_DOCUMENTS",
    "MAX_DOCUMENT_BYTES",
    "DocumentNames",
    "document_block",
    "image_block",
]

Json = dict[str, Any]

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
}
_EXTENSIONS = {
    **{fmt: fmt for fmt in DOCUMENT_FORMATS.values()},
    "htm": "html",
    "markdown": "md",
}
_UNTYPED = frozenset({"", "application/octet-stream"})
_FILE_KEYS = frozenset({"file_data", "file_id", "filename"})
MAX_DOCUMENTS = 5
# Bedrock documents "4.5 MB"; the larger reading (MiB), so nothing it takes is refused here.
MAX_DOCUMENT_BYTES = 4608 * 1024
_MAX_NAME = 200
_SUFFIX_ROOM = 8  # " (9999)" still fits under the limit
_WHITESPACE = re.compile(r"\s+")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9 ()\[\]-]+")
_DOCUMENT_HELP = (
    "Bedrock takes documents of type pdf, csv, doc, docx, xls, xlsx, html, txt or md (named "
    "by the media type, or by the filename's extension with application/octet-stream)"
)


def _data_url(url: str, where: str) -> tuple[str, str]:
    """'data:text/plain;charset=utf-8;base64,AAAA' -> ('text/plain', 'AAAA'), checked."""
    header, comma, data = url[len("data:") :].partition(",")
    params = header.split(";")
    if not comma or params[-1].strip().lower() != "base64":
        raise InvalidRequestError(
            f"{where} must be a base64 data URL: 'data:<media type>;base64,<data>'", param=where
        )
    return params[0].strip().lower(), data


def _decode(data: str, where: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise InvalidRequestError(f"invalid base64 data at {where}", param=where) from exc


def image_block(part: ImagePart, where: str) -> Json:
    url = part.image_url.url
    fix = "pass the image inline as a data URL: 'data:image/png;base64,<bytes>'"
    if not url.startswith("data:"):
        raise InvalidRequestError(
            f"Bedrock takes images only as bytes, not URLs ({where}): {fix}, "
            "or let chatgate download it: download_images=True",
            param=where,
        )
    header, _, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    fmt = IMAGE_FORMATS.get(mime.lower())
    if fmt is None or encoding != "base64":
        raise InvalidRequestError(
            f"unsupported image {header!r} at {where}: Bedrock takes png, jpeg, gif or webp, "
            "base64-encoded",
            param=where,
        )
    raw = _decode(data, where)
    return {"image": {"format": fmt, "source": {"bytes": base64.b64encode(raw).decode()}}}


def _split_filename(filename: str | None) -> tuple[str, str]:
    """'docs/Q3 report.PDF' -> ('Q3 report', 'pdf'); an unknown extension stays in the stem."""
    base = re.split(r"[/\\]", filename or "")[-1]
    stem, dot, ext = base.rpartition(".")
    if dot and stem and ext.lower() in _EXTENSIONS:
        return stem, ext.lower()
    return base, ""


def _sanitize(stem: str) -> str:
    plain = "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))
    name = _NOT_ALLOWED.sub("-", _WHITESPACE.sub(" ", plain)).strip(" -")
    return name[: _MAX_NAME - _SUFFIX_ROOM].rstrip(" -")


class DocumentNames:
    """Per request: counts the documents and hands out valid, unique names in order."""

    def __init__(self) -> None:
        self.count = 0
        self._taken: set[str] = set()

    def take(self, stem: str, where: str) -> str:
        self.count += 1
        if self.count > MAX_DOCUMENTS:
            raise InvalidRequestError(
                f"{where}: Bedrock takes at most {MAX_DOCUMENTS} documents per request, counted "
                "over the whole conversation (every turn is sent again): drop earlier documents "
                "or summarise them as text",
                param=where,
            )
        base = _sanitize(stem)
        if not any(c.isalnum() for c in base):
            base = f"document-{self.count}"
        name, n = base, 1
        while name.lower() in self._taken:
            n += 1
            name = f"{base} ({n})"
        self._taken.add(name.lower())
        return name


def _file_data(part: FilePart, where: str) -> str:
    unknown = sorted(set(part.file) - _FILE_KEYS)
    if unknown:
        raise InvalidRequestError(
            f"{where}.file has fields Bedrock cannot use: {', '.join(unknown)}; a file part "
            "holds file_data and filename",
            param=f"{where}.file",
        )
    data = part.file.get("file_data")
    if isinstance(data, str) and data.startswith("data:"):
        return data
    if data is None and part.file.get("file_id") is not None:
        reason = "file_id refers to OpenAI's file store, which Bedrock cannot read"
    elif isinstance(data, str) and "://" in data[:16]:
        reason = "Bedrock takes documents only as bytes and chatgate does not fetch URLs"
    else:
        reason = "file_data is missing or not a data URL"
    raise InvalidRequestError(
        f"{where}: {reason}: send the file inline, as file_data "
        "'data:application/pdf;base64,<bytes>' with a filename",
        param=f"{where}.file.file_data",
    )


def document_block(part: FilePart, where: str, names: DocumentNames) -> Json:
    at = f"{where}.file.file_data"
    mime, data = _data_url(_file_data(part, where), at)
    filename = part.file.get("filename")
    if filename is not None and not isinstance(filename, str):
        raise InvalidRequestError(f"{where}.file.filename must be a string", param=where)
    stem, ext = _split_filename(filename)
    fmt = DOCUMENT_FORMATS.get(mime) or (_EXTENSIONS.get(ext) if mime in _UNTYPED else None)
    if fmt is None:
        hint = "; send images as image_url parts" if mime.startswith("image/") else ""
        raise InvalidRequestError(
            f"unsupported document type {mime or 'none'!r} at {at}: {_DOCUMENT_HELP}{hint}",
            param=at,
        )
    size = len(_decode(data, at))
    if not 0 < size <= MAX_DOCUMENT_BYTES:
        raise InvalidRequestError(
            f"{at}: a Bedrock document must hold 1 byte to 4.5 MiB, this one has {size} bytes; "
            "split a large document, or send its text",
            param=at,
        )
    name = names.take(stem, where)
    return {"document": {"format": fmt, "name": name, "source": {"bytes": data}}}
