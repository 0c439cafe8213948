"""The fake Bedrock speaks the wire format exactly: boto3's bedrock-runtime client parses its
Converse answers, its binary ConverseStream and its errors, and its SigV4 check accepts
boto3's signatures (and rejects a wrong secret)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.fakes.bedrock_server import (
    ACCESS_KEY,
    SECRET_KEY,
    FakeBedrock,
    Reply,
    converse_json,
    error_reply,
    event,
    exception,
    text_events,
    tool_events,
    usage_json,
)

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


@pytest.fixture
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        yield server


_open: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()  # boto3 keeps pooled sockets open until told


def client(fake: FakeBedrock, secret: str = SECRET_KEY) -> Any:
    sdk = boto3.client(
        "bedrock-runtime",
        endpoint_url=fake.url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )
    _open.append(sdk)
    return sdk


HI = [{"role": "user", "content": [{"text": "hi there"}]}]


def test_boto3_converse_and_signature_accepted(bedrock: FakeBedrock) -> None:
    out = client(bedrock).converse(modelId=MODEL, messages=HI)
    assert out["output"]["message"]["content"] == [{"text": "echo: hi there"}]
    assert out["stopReason"] == "end_turn"
    assert out["usage"] == {"inputTokens": 9, "outputTokens": 3, "totalTokens": 12}
    assert out["metrics"] == {"latencyMs": 321}
    assert out["ResponseMetadata"]["RequestId"] == "req-bedrock-1"
    # boto3 percent-encodes ':' in the model id; the fake verified the signature over it.
    assert bedrock.last.raw_path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert (bedrock.last.region, bedrock.last.service) == ("us-east-1", "bedrock")


def test_boto3_converse_tool_use(bedrock: FakeBedrock) -> None:
    use = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo"}}}
    bedrock.script(
        Reply(json=converse_json([{"text": "Let me check."}, use], stop_reason="tool_use"))
    )
    out = client(bedrock).converse(modelId=MODEL, messages=HI)
    assert out["output"]["message"]["content"][1] == use
    assert out["stopReason"] == "tool_use"


def test_boto3_converse_stream_decodes_every_frame(bedrock: FakeBedrock) -> None:
    events = text_events(["Hel", "lo"], usage=usage_json(5, 2, cacheReadInputTokens=4))
    events[3:3] = tool_events(1, "tooluse_9", "look", ['{"a":', "1}"])
    bedrock.script(Reply(events=events, split=7))
    response = client(bedrock).converse_stream(modelId=MODEL, messages=HI)
    got = list(response["stream"])
    kinds = [next(iter(e)) for e in got]
    assert kinds == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert got[1]["contentBlockDelta"]["delta"] == {"text": "Hel"}
    assert got[3]["contentBlockStart"]["start"]["toolUse"] == {
        "toolUseId": "tooluse_9",
        "name": "look",
    }
    assert got[4]["contentBlockDelta"]["delta"] == {"toolUse": {"input": '{"a":'}}
    assert got[8]["messageStop"]["stopReason"] == "end_turn"
    assert got[9]["metadata"]["usage"]["cacheReadInputTokens"] == 4
    assert bedrock.last.raw_path.endswith("%3A0/converse-stream")


def test_boto3_raises_stream_exception_events(bedrock: FakeBedrock) -> None:
    events = [
        event("messageStart", {"role": "assistant"}),
        exception("throttlingException", "Too many tokens, please wait."),
    ]
    bedrock.script(Reply(events=events))
    response = client(bedrock).converse_stream(modelId=MODEL, messages=HI)
    with pytest.raises(Exception, match="Too many tokens") as info:
        list(response["stream"])
    response["stream"].close()
    assert type(info.value).__name__ == "EventStreamError"
    assert info.value.response["Error"]["Code"] == "throttlingException"  # type: ignore[attr-defined]


def test_boto3_reads_error_type_and_message(bedrock: FakeBedrock) -> None:
    bedrock.script(
        error_reply(400, "ValidationException", "Input is too long for requested model.")
    )
    with pytest.raises(ClientError) as info:
        client(bedrock).converse(modelId=MODEL, messages=HI)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"] == "Input is too long for requested model."
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_wrong_secret_is_rejected_like_aws(bedrock: FakeBedrock) -> None:
    with pytest.raises(ClientError) as info:
        client(bedrock, secret="not-the-secret").converse(modelId=MODEL, messages=HI)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
