"""File parts to Bedrock end to end: chatgate -> the fake Bedrock (real sockets, SigV4 checked,
document blocks validated by Converse's rules). The body the fake receives carries the
document block exactly, the same body boto3 sends for the same document, streamed or not."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.exceptions import ClientError

import chatgate
from tests.fakes.bedrock_server import FakeBedrock
from tests.integration.test_bedrock import MODEL, MODEL_ID, bedrock  # noqa: F401  (the fixture)
from tests.unit.test_bedrock_fake_wire import _close_clients, client  # noqa: F401  (autouse)

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PDF = base64.b64encode(PDF_BYTES).decode()
CSV = base64.b64encode(b"city,temp\nOslo,4\n").decode()


def parts(filename: str = "Q3 report_v2.1.pdf") -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": "Summarise both."},
        {
            "type": "file",
            "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": filename},
        },
        {"type": "file", "file": {"file_data": f"data:text/csv;base64,{CSV}", "filename": "t.csv"}},
    ]


EXPECTED = [
    {"text": "Summarise both."},
    {"document": {"format": "pdf", "name": "Q3 report-v2-1", "source": {"bytes": PDF}}},
    {"document": {"format": "csv", "name": "t", "source": {"bytes": CSV}}},
]


@pytest.fixture
def sdk(bedrock: FakeBedrock) -> Any:  # noqa: F811
    return client(bedrock)  # closed by _close_clients


async def test_document_blocks_arrive_exactly_streamed_or_not(bedrock: FakeBedrock) -> None:  # noqa: F811
    messages = [{"role": "user", "content": parts()}]
    response = await chatgate.acompletion(MODEL, messages)
    assert response.content == "echo: Summarise both."
    assert bedrock.last.raw_path.endswith("/converse")
    assert bedrock.last.body == {"messages": [{"role": "user", "content": EXPECTED}]}
    stream = await chatgate.acompletion(MODEL, messages, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: Summarise both."
    assert bedrock.last.raw_path.endswith("/converse-stream")
    assert bedrock.last.body == {"messages": [{"role": "user", "content": EXPECTED}]}


def test_boto3_sends_the_same_body(bedrock: FakeBedrock, sdk: Any) -> None:  # noqa: F811
    chatgate.completion(MODEL, [{"role": "user", "content": parts()}])
    content: list[dict[str, Any]] = [
        {"text": "Summarise both."},
        {"document": {"format": "pdf", "name": "Q3 report-v2-1", "source": {"bytes": PDF_BYTES}}},
        {
            "document": {
                "format": "csv",
                "name": "t",
                "source": {"bytes": base64.b64decode(CSV)},
            }
        },
    ]
    sdk.converse(modelId=MODEL_ID, messages=[{"role": "user", "content": content}])
    ours, boto = bedrock.requests[-2].body, bedrock.requests[-1].body
    assert ours == boto


def test_the_fake_refuses_what_bedrock_refuses(bedrock: FakeBedrock, sdk: Any) -> None:  # noqa: F811
    def document(name: str) -> dict[str, Any]:
        return {"document": {"format": "pdf", "name": name, "source": {"bytes": PDF_BYTES}}}

    hi = {"text": "hi"}
    refused = {
        "a dot in the name": [document("report.pdf"), hi],
        "a name used twice": [document("report"), document("report"), hi],
        "no text beside it": [document("report")],
    }
    for case, content in refused.items():
        with pytest.raises(ClientError) as info:
            sdk.converse(modelId=MODEL_ID, messages=[{"role": "user", "content": content}])
        assert info.value.response["Error"]["Code"] == "ValidationException", case
    # The same files through chatgate: names made valid and unique, so Bedrock takes them.
    twice = [*parts("report.pdf"), parts("report.pdf")[1]]
    chatgate.completion(MODEL, [{"role": "user", "content": twice}])
    names = [b["document"]["name"] for b in bedrock.last.body["messages"][0]["content"][1:]]
    assert names == ["report", "t", "report (2)"]


def test_unsendable_files_fail_before_any_request(bedrock: FakeBedrock) -> None:  # noqa: F811
    file_id = {"type": "file", "file": {"file_id": "file-abc123"}}
    with pytest.raises(chatgate.InvalidRequestError, match="file_id") as info:
        chatgate.completion(MODEL, [{"role": "user", "content": [parts()[0], file_id]}])
    assert info.value.param == "messages.0.content.1.file.file_data"
    assert bedrock.requests == []
