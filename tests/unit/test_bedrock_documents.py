"""OpenAI file parts -> Converse document blocks through the real request builder: format from
the media type or extension, names made valid and unique, Bedrock's limits and rules checked
before sending, content order kept. Pure, no network."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from chatgate.errors import InvalidRequestError
from chatgate.providers.base import Deployment
from chatgate.providers.bedrock.content import MAX_DOCUMENT_BYTES
from chatgate.providers.bedrock.request import converse_body
from chatgate.types import ChatRequest

DEP = Deployment(provider="bedrock", model="anthropic.claude-3-5-sonnet", api_base="http://x")
PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()
PNG = "iVBORw0KGgo="


def file_part(
    data: str = PDF, mime: str = "application/pdf", filename: str | None = "report.pdf"
) -> dict[str, Any]:
    file: dict[str, Any] = {"file_data": f"data:{mime};base64,{data}"}
    if filename is not None:
        file["filename"] = filename
    return {"type": "file", "file": file}


def text(value: str = "summarise") -> dict[str, Any]:
    return {"type": "text", "text": value}


def body(*messages: dict[str, Any]) -> dict[str, Any]:
    return converse_body(ChatRequest(model=DEP.model, messages=list(messages)), DEP)


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def documents(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [b["document"] for t in out["messages"] for b in t["content"] if "document" in b]


def test_pdf_becomes_a_document_block_in_content_order() -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    out = body(user(text("compare"), file_part(), image, text("briefly")))
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "compare"},
                {"document": {"format": "pdf", "name": "report", "source": {"bytes": PDF}}},
                {"image": {"format": "png", "source": {"bytes": PNG}}},
                {"text": "briefly"},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("mime", "filename", "fmt"),
    [
        ("application/pdf", "a.pdf", "pdf"),
        ("text/csv", "a.csv", "csv"),
        ("application/msword", "a.doc", "doc"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "a", "docx"),
        ("application/vnd.ms-excel", "a.xls", "xls"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "a", "xlsx"),
        ("text/html", "a.html", "html"),
        ("text/plain;charset=utf-8", "a.txt", "txt"),
        ("text/markdown", "a.md", "md"),
        ("Text/X-Markdown", "a.md", "md"),
        ("application/octet-stream", "sheet.XLSX", "xlsx"),
        ("application/octet-stream", "page.htm", "html"),
        ("", "notes.markdown", "md"),
        ("text/plain", "readme.md", "txt"),  # the media type wins over the extension
    ],
)
def test_format_from_media_type_or_extension(mime: str, filename: str, fmt: str) -> None:
    (document,) = documents(body(user(text(), file_part(mime=mime, filename=filename))))
    assert document["format"] == fmt


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("report.pdf", "report"),
        ("docs/Q3  report_final.PDF", "Q3 report-final"),
        ("C:\\Users\\ana\\Résumé (v2) [draft].pdf", "Resume (v2) [draft]"),
        ("John's report #1.pdf", "John-s report -1"),
        ("data.v2.pdf", "data-v2"),
        ("notes.backup", "notes-backup"),  # not a document extension: kept, dot made a hyphen
        ("\t lead\t\ttab \n.pdf", "lead tab"),
        ("_draft_.pdf", "draft"),
        ("報告書.pdf", "document-1"),  # nothing Bedrock accepts is left
        (".pdf", "pdf"),  # a bare extension is the name, not an extension
        (None, "document-1"),
        ("x" * 300 + ".pdf", "x" * 192),
    ],
)
def test_names_are_sanitized_deterministically(filename: str | None, name: str) -> None:
    (document,) = documents(body(user(text(), file_part(filename=filename))))
    assert document["name"] == name


def test_names_are_unique_and_stable_as_the_conversation_grows() -> None:
    first = [
        user(text(), file_part(filename="report.pdf"), file_part(filename=None)),
        {"role": "assistant", "content": "done"},
        user(text(), file_part(filename="REPORT.pdf"), file_part(filename="document-2.pdf")),
    ]
    names = [d["name"] for d in documents(body(*first))]
    assert names == ["report", "document-2", "REPORT (2)", "document-2 (2)"]
    grown = [*first, {"role": "assistant", "content": "ok"}, user(text(), file_part())]
    again = [d["name"] for d in documents(body(*grown))]
    assert again == [*names, "report (3)"]


def test_text_may_come_from_a_merged_turn() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    out = body(
        user(text("hi")),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "t1", "content": "r"},
        user(file_part()),
        user(text("what does it say")),
    )
    last = out["messages"][-1]["content"]
    assert [next(iter(b)) for b in last] == ["toolResult", "document", "text"]


def test_a_document_without_text_in_its_message_is_named() -> None:
    with pytest.raises(InvalidRequestError, match="needs a text part") as info:
        body(user(text("hi")), {"role": "assistant", "content": "yes"}, user(file_part()))
    assert info.value.param == "messages.2"
    with pytest.raises(InvalidRequestError, match="needs a text part"):
        body(user(file_part(), text("")))  # an empty text part is not sent, so it does not count


@pytest.mark.parametrize(
    ("file", "param", "match"),
    [
        ({"file_id": "file-abc"}, "messages.0.content.1.file.file_data", "file_id refers to"),
        (
            {"file_data": "https://example.com/a.pdf", "filename": "a.pdf"},
            "messages.0.content.1.file.file_data",
            "does not fetch URLs",
        ),
        ({"file_data": PDF}, "messages.0.content.1.file.file_data", "not a data URL"),
        (
            {"file_data": "data:application/pdf," + PDF},
            "messages.0.content.1.file.file_data",
            "base64 data URL",
        ),
        (
            {"file_data": "data:application/zip;base64," + PDF},
            "messages.0.content.1.file.file_data",
            "pdf, csv, doc, docx",
        ),
        (
            {"file_data": f"data:image/png;base64,{PNG}"},
            "messages.0.content.1.file.file_data",
            "send images as image_url parts",
        ),
        (
            {"file_data": "data:application/octet-stream;base64," + PDF, "filename": "a.bin"},
            "messages.0.content.1.file.file_data",
            "unsupported document type",
        ),
        (
            {"file_data": "data:application/pdf;base64,@@@@"},
            "messages.0.content.1.file.file_data",
            "invalid base64",
        ),
        (
            {"file_data": "data:application/pdf;base64,"},
            "messages.0.content.1.file.file_data",
            "has 0 bytes",
        ),
        ({**file_part()["file"], "detail": "x"}, "messages.0.content.1.file", "detail"),
        ({**file_part()["file"], "filename": 7}, "messages.0.content.1", "must be a string"),
    ],
)
def test_what_cannot_be_sent_is_named(file: dict[str, Any], param: str, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match) as info:
        body(user(text(), {"type": "file", "file": file}))
    assert info.value.param == param


def test_size_limit() -> None:
    at_limit = base64.b64encode(b"x" * MAX_DOCUMENT_BYTES).decode()
    (document,) = documents(body(user(text(), file_part(data=at_limit, mime="text/plain"))))
    assert document["source"]["bytes"] == at_limit
    over = base64.b64encode(b"x" * (MAX_DOCUMENT_BYTES + 1)).decode()
    with pytest.raises(InvalidRequestError, match=r"4\.5 MiB"):
        body(user(text(), file_part(data=over, mime="text/plain")))


def test_at_most_five_documents_per_request() -> None:
    five = [user(text(), *[file_part(filename=f"f{i}.pdf") for i in range(5)])]
    assert len(documents(body(*five))) == 5
    sixth = [*five, {"role": "assistant", "content": "ok"}, user(text(), file_part())]
    with pytest.raises(InvalidRequestError, match="at most 5 documents") as info:
        body(*sixth)
    assert info.value.param == "messages.2.content.1"
