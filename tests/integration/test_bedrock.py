"""Bedrock through chatgate.completion / acompletion against the fake Bedrock over real
sockets: Converse, ConverseStream, tools, images, JSON output, errors, SigV4 on every call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import chatgate
from tests.fakes.bedrock_server import (
    ACCESS_KEY,
    SECRET_KEY,
    FakeBedrock,
    Reply,
    converse_json,
    error_reply,
    text_events,
    usage_json,
)

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
MODEL = f"bedrock/{MODEL_ID}"
PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        monkeypatch.setenv("AWS_REGION", "eu-west-3")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        yield server


def ask(content: object = "hi", **kw: object) -> chatgate.ChatResponse:
    return chatgate.completion(model=MODEL, messages=[{"role": "user", "content": content}], **kw)


def test_converse_signed_request_and_exact_body(bedrock: FakeBedrock) -> None:
    response = chatgate.completion(
        model=MODEL,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is up"},
        ],
        max_tokens=50,
        temperature=0.2,
        stop="END",
        extra_body={"top_k": 5},
    )
    assert response.content == "echo: what is up"
    assert response.finish_reason == "stop"
    assert response.meta.provider == "bedrock"
    assert response.meta.request_id == "req-bedrock-1"
    assert response.usage is not None
    assert response.usage.total_tokens == 12
    assert response.model_extra == {"metrics": {"latencyMs": 321}}
    sent = bedrock.last
    assert sent.raw_path == PATH  # the signature the fake checked covers this exact path
    assert (sent.region, sent.service) == ("eu-west-3", "bedrock")
    assert sent.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "what is up"}]}],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]},
        "additionalModelRequestFields": {"top_k": 5},
    }


async def test_stream_with_usage_split_into_tiny_writes(bedrock: FakeBedrock) -> None:
    events = text_events(
        ["Hel", "lo ", "wörld"],
        usage=usage_json(5, 3, cacheReadInputTokens=2, cacheWriteInputTokens=1),
    )
    bedrock.script(Reply(events=events, split=5))
    stream = await chatgate.acompletion(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    final = await stream.afinal()
    assert final.content == "Hello wörld"
    assert final.finish_reason == "stop"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    assert final.usage is not None
    assert final.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 8,
        "completion_tokens": 3,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 2, "cache_creation_tokens": 1},
    }
    assert bedrock.last.raw_path == PATH + "-stream"
    assert bedrock.last.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert "stream" not in bedrock.last.body


CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": CITY_SCHEMA,
        },
    }
]


def _use(id_: str, city: str) -> dict[str, object]:
    return {"toolUse": {"toolUseId": id_, "name": "get_weather", "input": {"city": city}}}


def test_three_round_tool_conversation(bedrock: FakeBedrock) -> None:
    bedrock.script(
        Reply(
            json=converse_json(
                [{"text": "Checking."}, _use("tu_1", "Oslo")], stop_reason="tool_use"
            )
        ),
        Reply(json=converse_json([_use("tu_2", "Rome")], stop_reason="tool_use")),
        Reply(json=converse_json("Oslo 3C, Rome 18C")),
    )
    messages: list[dict[str, object]] = [{"role": "user", "content": "Oslo and Rome?"}]
    for result in ("3C", "18C"):
        response = chatgate.completion(
            model=MODEL, messages=messages, tools=WEATHER, tool_choice="auto"
        )
        assert response.finish_reason == "tool_calls"
        message = response.choices[0].message
        assert message.tool_calls is not None
        messages.append(message.model_dump(exclude_none=True))
        messages.append(
            {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": result}
        )
    final = chatgate.completion(model=MODEL, messages=messages, tools=WEATHER, tool_choice="auto")
    assert final.content == "Oslo 3C, Rome 18C"
    assert bedrock.last.body["messages"] == [
        {"role": "user", "content": [{"text": "Oslo and Rome?"}]},
        {"role": "assistant", "content": [{"text": "Checking."}, _use("tu_1", "Oslo")]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "tu_1", "content": [{"text": "3C"}]}}],
        },
        {"role": "assistant", "content": [_use("tu_2", "Rome")]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "tu_2", "content": [{"text": "18C"}]}}],
        },
    ]
    assert bedrock.last.body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "inputSchema": {"json": CITY_SCHEMA},
                }
            }
        ],
        "toolChoice": {"auto": {}},
    }


def test_image_url_is_refused(bedrock: FakeBedrock) -> None:
    # data URLs, sent as bytes: tests/conformance/test_answers.py
    with pytest.raises(chatgate.InvalidRequestError, match="data URL"):
        ask([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}])
    assert bedrock.requests == []


@pytest.mark.parametrize(
    ("status", "error_type", "message", "cls", "retryable"),
    [
        (
            400,
            "ValidationException",
            "Input is too long for requested model.",
            chatgate.ContextWindowExceededError,
            False,
        ),
        (400, "ServiceQuotaExceededException", "quota", chatgate.RateLimitError, True),
        (429, "ModelNotReadyException", "warming", chatgate.RateLimitError, True),
        (408, "ModelTimeoutException", "slow", chatgate.APIStatusError, True),
        (424, "ModelErrorException", "model failed", chatgate.InternalServerError, True),
        (403, "ExpiredTokenException", "expired", chatgate.AuthenticationError, False),
    ],
)  # the errors every provider shares: tests/conformance/test_errors.py
def test_errors_map_by_type(
    bedrock: FakeBedrock,
    status: int,
    error_type: str,
    message: str,
    cls: type[Exception],
    retryable: bool,
) -> None:
    bedrock.script(error_reply(status, error_type, message, **{"Retry-After": "3"}))
    with pytest.raises(cls) as info:
        ask()
    error = info.value
    assert type(error) is cls
    assert isinstance(error, chatgate.APIStatusError)
    assert error.status_code == status
    assert error.retryable is retryable
    assert error.retry_after == 3.0
    assert error.request_id == "req-bedrock-1"
    assert error.message == f"{error_type}: {message}"


def test_bad_credentials_are_an_authentication_error(
    bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(chatgate.AuthenticationError, match="InvalidSignatureException"):
        ask()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")
    with pytest.raises(chatgate.AuthenticationError, match="UnrecognizedClientException"):
        ask()


def test_missing_credentials_name_the_env_vars(
    bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(chatgate.MissingAPIKeyError, match=r"AWS_ACCESS_KEY_ID.*AWS_PROFILE"):
        ask()
    assert bedrock.requests == []


def test_unsupported_params_are_named_or_dropped(bedrock: FakeBedrock) -> None:
    with pytest.raises(chatgate.UnsupportedParamsError, match="frequency_penalty, seed"):
        ask(seed=1, frequency_penalty=0.5)
    assert bedrock.requests == []
    ask(seed=1, frequency_penalty=0.5, drop_params=True)
    assert "additionalModelRequestFields" not in bedrock.last.body
