"""Converse response -> ChatResponse, and error mapping per AWS error type; pure."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chatgate.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from chatgate.providers.base import Deployment
from chatgate.providers.bedrock.errors import CONTEXT_WINDOW_QUIRK, error_from_event, map_error
from chatgate.providers.bedrock.response import parse_response

DEP = Deployment(provider="bedrock", model="amazon.nova-pro-v1:0", api_base="http://x")


def parse(payload: dict[str, Any], json_tool: str | None = None) -> Any:
    return parse_response(orjson.dumps(payload), DEP, json_tool=json_tool, created=7)


def converse(content: list[dict[str, Any]], stop: str = "end_turn", **extra: Any) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 4, "totalTokens": 14},
        **extra,
    }


def test_text_reasoning_tool_use_and_extras() -> None:
    response = parse(
        converse(
            [
                {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
                {"text": "Hi "},
                {"text": "there"},
                {"toolUse": {"toolUseId": "tu1", "name": "f", "input": {"a": [1]}}},
            ],
            "tool_use",
            metrics={"latencyMs": 5},
            additionalModelResponseFields={"x": 1},
        )
    )
    message = response.choices[0].message
    assert message.content == "Hi there"
    assert message.reasoning_content == "think"
    assert message.tool_calls is not None
    assert message.tool_calls[0].model_dump() == {
        "id": "tu1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a":[1]}'},
    }
    assert response.finish_reason == "tool_calls"
    assert response.model == DEP.model
    assert response.created == 7
    assert response.id.startswith("chatcmpl-bedrock-")
    assert response.model_extra == {
        "metrics": {"latencyMs": 5},
        "additionalModelResponseFields": {"x": 1},
    }
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (10, 14)
    assert response.usage.prompt_tokens_details is None


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_tool_use", "malformed_tool_use"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    assert parse(converse([{"text": "x"}], stop)).finish_reason == finish


def test_cache_tokens_count_in_prompt_tokens() -> None:
    payload = converse([{"text": "x"}])
    payload["usage"] = {
        "inputTokens": 3,
        "outputTokens": 2,
        "totalTokens": 15,
        "cacheReadInputTokens": 8,
        "cacheWriteInputTokens": 2,
    }
    usage = parse(payload).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (13, 2, 15)
    assert usage.prompt_tokens_details.cached_tokens == 8
    assert usage.prompt_tokens_details.cache_creation_tokens == 2


def test_json_tool_input_becomes_content() -> None:
    use = {"toolUse": {"toolUseId": "tu", "name": "answer", "input": {"n": 1}}}
    response = parse(converse([use], "tool_use"), json_tool="answer")
    assert response.content == '{"n":1}'
    assert response.choices[0].message.tool_calls is None
    assert response.finish_reason == "stop"


@pytest.mark.parametrize("raw", [b"not json", b'{"output": {}}', b"[]"])
def test_malformed_answers_raise(raw: bytes) -> None:
    with pytest.raises(APIConnectionError, match="not a Converse response"):
        parse_response(raw, DEP, json_tool=None, created=0)


def _type(name: str) -> dict[str, str]:
    return {"x-amzn-errortype": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}


@pytest.mark.parametrize(
    ("status", "name", "cls", "retryable"),
    [
        (400, "ValidationException", BadRequestError, False),
        (403, "AccessDeniedException", PermissionDeniedError, False),
        (404, "ResourceNotFoundException", NotFoundError, False),
        (429, "ThrottlingException", RateLimitError, True),
        (400, "ServiceQuotaExceededException", RateLimitError, True),
        (429, "ModelNotReadyException", RateLimitError, True),
        (408, "ModelTimeoutException", APIStatusError, True),
        (424, "ModelErrorException", InternalServerError, True),
        (500, "InternalServerException", InternalServerError, True),
        (503, "ServiceUnavailableException", InternalServerError, True),
        (403, "UnrecognizedClientException", AuthenticationError, False),
        (403, "ExpiredTokenException", AuthenticationError, False),
        (403, "InvalidSignatureException", AuthenticationError, False),
        (418, "SomethingNew", APIStatusError, False),
    ],
)
def test_error_types(status: int, name: str, cls: type[Exception], retryable: bool) -> None:
    error = map_error(status, _type(name), b'{"message": "boom"}', DEP)
    assert type(error) is cls
    assert (error.status_code, error.retryable, error.message) == (
        status,
        retryable,
        f"{name}: boom",
    )
    assert error.body == {"message": "boom"}


def test_error_type_from_body_and_plain_text() -> None:
    error = map_error(
        429, {}, b'{"__type": "com.amazon.coral#ThrottlingException", "message": "m"}', DEP
    )
    assert type(error) is RateLimitError
    error = map_error(502, {}, b"Bad Gateway", DEP)
    assert type(error) is InternalServerError
    assert error.message == "Bad Gateway"


@pytest.mark.parametrize(
    "message",
    [
        "Input is too long for requested model.",
        "The model returned the following errors: prompt is too long: 210000 tokens > 200000",
        "Too many input tokens. Max input tokens: 8192, request input token count: 9000",
        "This model's maximum context length is 32768 tokens.",
    ],
)
def test_context_window_quirk(message: str) -> None:
    assert CONTEXT_WINDOW_QUIRK.search(message)
    body = orjson.dumps({"message": message})
    assert (
        type(map_error(400, _type("ValidationException"), body, DEP)) is ContextWindowExceededError
    )
    # Only a ValidationException is read this way; the text alone classifies nothing else.
    assert type(map_error(500, _type("InternalServerException"), body, DEP)) is InternalServerError


def test_stream_exception_events() -> None:
    error = error_from_event(
        "modelStreamErrorException", b'{"message": "bad", "originalStatusCode": 500}', DEP
    )
    assert type(error) is InternalServerError
    assert (error.status_code, error.retryable) == (424, True)
    error = error_from_event(
        "validationException", b'{"message": "Input is too long for requested model."}', DEP
    )
    assert type(error) is ContextWindowExceededError
    assert type(error_from_event("throttlingException", b"{}", DEP)) is RateLimitError
