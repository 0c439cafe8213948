"""A fake AWS Bedrock Runtime: a real HTTP server on 127.0.0.1 speaking Converse (JSON) and
ConverseStream (the binary ``application/vnd.amazon.eventstream``) exactly, scriptable per
test and recording what it received.

It checks every request's SigV4 signature the way AWS does: it rebuilds the canonical request
from the raw path, the signed headers and the body as they arrived, and answers 403
``UnrecognizedClientException`` / ``InvalidSignatureException`` when they do not match. With
nothing scripted it echoes the last user text. Document blocks are checked against
Converse's documented rules (``_document_error``) and refused with 400 ValidationException, as
AWS does, before any scripted reply.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from dataclasses import dataclass, replace
from typing import Any

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from tests.fakes.base import LoopbackServer
from tests.fakes.base import Received as BaseReceived
from tests.fakes.base import Reply as BaseReply

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"  # Bedrock's "p" padding field


# -- the event-stream encoder -------------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32), headers (all
    of string type 7), payload, message CRC32."""
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(name: str, payload: dict[str, Any]) -> bytes:
    body = orjson.dumps({**payload, "p": _PAD[: 1 + len(name) % 20]})
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, body)


def exception(name: str, message: str) -> bytes:
    """A stream exception event, e.g. ``throttlingException`` (lowerCamelCase, as AWS sends)."""
    headers = {
        ":exception-type": name,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, orjson.dumps({"message": message}))


# -- reply builders -----------------------------------------------------------------------------


def usage_json(inputs: int = 9, outputs: int = 3, **cache: int) -> dict[str, Any]:
    return {
        "inputTokens": inputs,
        "outputTokens": outputs,
        "totalTokens": inputs + outputs,
        **cache,
    }


def converse_json(
    content: list[dict[str, Any]] | str = "Hello!",
    *,
    stop_reason: str = "end_turn",
    usage: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    blocks = [{"text": content}] if isinstance(content, str) else content
    return {
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": stop_reason,
        "usage": usage or usage_json(),
        "metrics": {"latencyMs": 321},
        **extra,
    }


def text_events(
    words: list[str], *, stop_reason: str = "end_turn", usage: dict[str, Any] | None = None
) -> list[bytes]:
    out = [event("messageStart", {"role": "assistant"})]
    out += [
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in words
    ]
    out += [
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": stop_reason}),
        event("metadata", {"usage": usage or usage_json(), "metrics": {"latencyMs": 99}}),
    ]
    return out


def tool_events(block: int, tool_use_id: str, name: str, fragments: list[str]) -> list[bytes]:
    start = {
        "contentBlockIndex": block,
        "start": {"toolUse": {"toolUseId": tool_use_id, "name": name}},
    }
    out = [event("contentBlockStart", start)]
    out += [
        event("contentBlockDelta", {"contentBlockIndex": block, "delta": {"toolUse": {"input": f}}})
        for f in fragments
    ]
    return [*out, event("contentBlockStop", {"contentBlockIndex": block})]


def error_reply(status: int, error_type: str, message: str, **headers: str) -> Reply:
    return Reply(
        status=status,
        json={"message": message},
        headers={
            "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            **headers,
        },
    )


@dataclass
class Reply(BaseReply):
    """``json`` for a Converse answer; ``events`` (encoded frames) for a ConverseStream;
    ``split`` writes the stream in pieces of that many bytes; ``drop_after`` cuts the
    connection after that many frames."""

    events: list[bytes] | None = None


@dataclass
class Received(BaseReceived):
    raw_path: str = ""
    region: str = ""
    service: str = ""


_DOCUMENT_FORMATS = frozenset({"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"})
_DOCUMENT_NAME = re.compile(r"^(?!.*\s\s)[A-Za-z0-9\s()\[\]-]{1,200}$")


def _document_error(body: Any) -> str | None:
    """Converse's documented rules for document blocks, checked as the service checks them
    (AWS's wording where it is known; names compared ignoring case, the cautious reading):
    the reason a request is refused, or None."""
    names: list[str] = []
    for message in body.get("messages") or []:
        blocks = message.get("content") or []
        documents = [b["document"] for b in blocks if "document" in b]
        if documents and message.get("role") != "user":
            return "Documents are only supported in user messages."
        if documents and not any("text" in b for b in blocks):
            return "A message with a document must also contain a text content block."
        for document in documents:
            if document.get("format") not in _DOCUMENT_FORMATS:
                return f"Unsupported document format: {document.get('format')!r}."
            if not _DOCUMENT_NAME.match(str(document.get("name", ""))):
                return (
                    "The document file name can only contain alphanumeric characters, "
                    "whitespace characters, hyphens, parentheses, and square brackets. The name "
                    "can't contain more than one consecutive whitespace character."
                )
            try:
                raw = base64.b64decode(document["source"]["bytes"], validate=True)
            except (KeyError, TypeError, binascii.Error):
                return "The document source must be base64-encoded bytes."
            if not 0 < len(raw) <= 4608 * 1024:
                return "The document size must be between 1 byte and 4.5 MB."
            names.append(document["name"].lower())
    if len(names) > 5:
        return "You can't include more than 5 documents in a request."
    if len(set(names)) < len(names):
        return (
            "Messages can't contain duplicate document names. Rename the document and retry "
            "your request."
        )
    return None


def _last_user_text(body: Any) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return " ".join(b["text"] for b in message.get("content", []) if "text" in b)
    return ""


class FakeBedrock(LoopbackServer[Reply, Received]):
    """Start with ``with FakeBedrock() as fake:``; point clients at ``fake.url``."""

    stream_content_type = "application/vnd.amazon.eventstream"
    request_id_header = "x-amzn-RequestId"
    request_id_prefix = "req-bedrock-"

    def __init__(self, credentials: dict[str, str] | None = None) -> None:
        super().__init__()
        self.credentials = credentials or {ACCESS_KEY: SECRET_KEY}

    @property
    def url(self) -> str:
        return self.root_url

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/model/{model_id}/{action}", self._handle)

    # -- SigV4, checked as AWS checks it --------------------------------------------------------

    def _check_signature(self, request: web.Request, raw: bytes) -> tuple[Reply | None, Any]:
        match = _AUTH.match(request.headers.get("Authorization", ""))
        amz_date = request.headers.get("X-Amz-Date", "")
        if match is None or not amz_date.startswith(match["date"]):
            return error_reply(403, "IncompleteSignatureException", "bad Authorization"), None
        secret = self.credentials.get(match["key"])
        if secret is None:
            return error_reply(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ), match
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return error_reply(
                403, "IncompleteSignatureException", "host/x-amz-date unsigned"
            ), match
        headers = {name: request.headers.get(name, "") for name in signed}
        aws = AWSRequest(
            method=request.method, url=self.url + request.raw_path, data=raw, headers=headers
        )
        aws.context["timestamp"] = amz_date
        token = request.headers.get("X-Amz-Security-Token")
        signer = SigV4Auth(
            ReadOnlyCredentials(match["key"], secret, token), match["service"], match["region"]
        )
        expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
        if expected != match["signature"]:
            return error_reply(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            ), match
        return None, match

    # -- serving --------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = orjson.loads(raw) if raw else None
        denied, match = self._check_signature(request, raw)
        region, service = (match["region"], match["service"]) if match else ("", "")
        path = request.raw_path
        self.requests.append(
            Received(request.method, path, dict(request.headers), body, path, region, service)
        )
        stream = request.match_info["action"] == "converse-stream"
        invalid = _document_error(body) if denied is None and isinstance(body, dict) else None
        if denied is not None:
            reply = denied
        elif invalid is not None:
            reply = error_reply(400, "ValidationException", invalid)
        elif self.replies:
            reply = self.replies.popleft()
        else:
            text = f"echo: {_last_user_text(body or {})}"
            words = text.split(" ")
            pieces = [w + " " for w in words[:-1]] + words[-1:]
            reply = Reply(events=text_events(pieces)) if stream else Reply(json=converse_json(text))
        if reply.events is not None:  # encoded frames, no terminator after the last
            reply = replace(reply, chunks=reply.events, done=False)
        return await self._respond(request, reply, self.request_headers(reply))
