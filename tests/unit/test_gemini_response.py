"""Gemini GenerateContentResponse -> ChatResponse, and error bodies -> our error tree."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.genai import types as genai_types

import chatgate
from chatgate.providers.base import Deployment
from chatgate.providers.gemini import ADAPTER
from chatgate.types import ChatRequest, ChatResponse
from tests.fakes.gemini_server import candidate_json, error_json, response_json, usage_json

DEP = Deployment("gemini", "gemini-2.5-flash", "https://g.example/v1beta", api_key="k")
REQ = ChatRequest.model_validate(
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "q"}]}
)


def parse(body: dict[str, Any]) -> ChatResponse:
    return ADAPTER.parse_response(orjson.dumps(body), REQ, DEP)


def test_text_thoughts_usage_id_and_model() -> None:
    out = parse(
        response_json(
            candidate_json({"text": "think", "thought": True}, {"text": "Hel"}, {"text": "lo"}),
            usage=usage_json(10, 5, thoughtsTokenCount=7, cachedContentTokenCount=4),
        )
    )
    assert out.id == "resp-fake-1"
    assert out.model == "gemini-2.5-flash"
    assert out.content == "Hello"
    assert out.choices[0].message.reasoning_content == "think"
    assert out.finish_reason == "stop"
    assert out.usage is not None
    assert out.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 10,
        "completion_tokens": 12,
        "total_tokens": 22,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 7},
    }


def test_function_calls_get_stable_ids_or_keep_gemini_ids() -> None:
    out = parse(
        response_json(
            candidate_json(
                {"functionCall": {"name": "get", "args": {"a": 1}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "put", "args": {}, "id": "g-7"}},
            )
        )
    )
    calls = out.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_resp-fake-1_0", "get", '{"a":1}'),
        ("g-7", "put", "{}"),
    ]
    assert calls[0].model_extra == {"extra_content": {"google": {"thought_signature": "c2ln"}}}
    assert out.finish_reason == "tool_calls"
    anonymous = parse(
        response_json(candidate_json({"functionCall": {"name": "f"}}), response_id="")
    )
    assert anonymous.choices[0].message.tool_calls is not None
    assert anonymous.choices[0].message.tool_calls[0].id == "call_0"


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
        ("IMAGE_RECITATION", "content_filter"),
        ("LANGUAGE", "content_filter"),
        ("ESCALATION", "content_filter"),
        ("MODEL_ARMOR", "content_filter"),
        ("CONTINUATION", "length"),
    ],
)
def test_finish_reasons(native: str, expected: str) -> None:
    out = parse(response_json(candidate_json({"text": "x"}, finish_reason=native)))
    assert out.finish_reason == expected
    assert out.choices[0].model_extra == {"native_finish_reason": native}


# Every value of the installed google-genai's FinishReason, decided one by one: a new value in
# a newer SDK fails here until someone decides what it means for a caller.
DECIDED: dict[str, str | type[Exception]] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",
    **dict.fromkeys(
        [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT",
            "IMAGE_RECITATION",
            "LANGUAGE",
            "ESCALATION",
            "MODEL_ARMOR",
        ],
        "content_filter",
    ),
    "MALFORMED_FUNCTION_CALL": chatgate.MalformedToolCallError,
    "UNEXPECTED_TOOL_CALL": chatgate.MalformedToolCallError,
    **dict.fromkeys(
        [
            "TOO_MANY_TOOL_CALLS",
            "MALFORMED_RESPONSE",
            "NO_IMAGE",
            "OTHER",
            "IMAGE_OTHER",
            "FINISH_REASON_UNSPECIFIED",
        ],
        chatgate.NoAnswerError,
    ),
    "MISSING_THOUGHT_SIGNATURE": chatgate.BadRequestError,
    "PUP_LIMITED_DISABLED": chatgate.PermissionDeniedError,
}


@pytest.mark.parametrize("native", [reason.value for reason in genai_types.FinishReason])
def test_every_sdk_finish_reason_is_decided(native: str) -> None:
    decided = DECIDED[native]
    body = response_json(candidate_json({"text": "x"}, finish_reason=native))
    if isinstance(decided, str):
        assert parse(body).finish_reason == decided
        return
    with pytest.raises(decided) as info:
        parse(body)
    assert type(info.value) is decided


@pytest.mark.parametrize("native", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"])
def test_an_unusable_tool_call_raises_even_with_a_parsed_call(native: str) -> None:
    call = {"functionCall": {"name": "weather", "args": {}}}
    second = candidate_json({"text": "fine"}, index=1)
    body = response_json(
        candidate_json(call, finish_reason=native), second, usage=usage_json(30, 2)
    )
    with pytest.raises(chatgate.MalformedToolCallError) as info:
        parse(body)
    assert info.value.finish_reason == native
    assert info.value.finish_message is None
    assert info.value.body == body  # the whole answer, the other candidate too
    assert info.value.usage is not None
    assert info.value.usage.total_tokens == 32


def test_several_candidates_and_logprobs() -> None:
    first = candidate_json({"text": "a"}, index=0)
    first["logprobsResult"] = {
        "topCandidates": [{"candidates": [{"token": "a", "logProbability": -0.1}]}],
        "chosenCandidates": [{"token": "a", "logProbability": -0.1}],
    }
    out = parse(response_json(first, candidate_json({"text": "b"}, index=1)))
    assert [c.message.content for c in out.choices] == ["a", "b"]
    assert out.choices[0].logprobs == {
        "content": [
            {
                "token": "a",
                "logprob": -0.1,
                "bytes": [97],
                "top_logprobs": [{"token": "a", "logprob": -0.1, "bytes": [97]}],
            }
        ],
        "refusal": None,
    }


def test_blocked_prompt_raises_content_policy_violation() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage_json(3, 0)}
    with pytest.raises(chatgate.ContentPolicyViolationError, match="SAFETY") as info:
        parse(body)
    assert not info.value.retryable


def test_malformed_body_is_a_connection_error() -> None:
    with pytest.raises(chatgate.APIConnectionError):
        ADAPTER.parse_response(b"<html>", REQ, DEP)
    with pytest.raises(chatgate.APIConnectionError):
        ADAPTER.parse_response(b"[]", REQ, DEP)


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
KEY_INVALID = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
}


@pytest.mark.parametrize(
    ("status", "name", "cls", "retryable"),
    [
        (400, "INVALID_ARGUMENT", chatgate.BadRequestError, False),
        (400, "FAILED_PRECONDITION", chatgate.BadRequestError, False),
        (403, "PERMISSION_DENIED", chatgate.PermissionDeniedError, False),
        (404, "NOT_FOUND", chatgate.NotFoundError, False),
        (429, "RESOURCE_EXHAUSTED", chatgate.RateLimitError, True),
        (500, "INTERNAL", chatgate.InternalServerError, True),
        (503, "UNAVAILABLE", chatgate.InternalServerError, True),
        (504, "DEADLINE_EXCEEDED", chatgate.InternalServerError, True),
    ],
)
def test_error_status_maps_to_class(
    status: int, name: str, cls: type[chatgate.APIStatusError], retryable: bool
) -> None:
    body = error_json(status, name, "it broke")
    err = ADAPTER.map_error(status, {}, orjson.dumps(body), DEP)
    assert type(err) is cls
    assert err.status_code == status
    assert err.retryable is retryable
    assert err.body == body
    assert err.message == "it broke"


def test_retry_delay_from_retry_info_and_header_wins() -> None:
    body = orjson.dumps(error_json(429, "RESOURCE_EXHAUSTED", "quota", [RETRY]))
    assert ADAPTER.map_error(429, {}, body, DEP).retry_after == 12.0
    assert ADAPTER.map_error(429, {"retry-after": "3"}, body, DEP).retry_after == 3.0
    fractional = {**RETRY, "retryDelay": "45.837906927s"}
    body = orjson.dumps(error_json(429, "RESOURCE_EXHAUSTED", "quota", [fractional]))
    assert ADAPTER.map_error(429, {}, body, DEP).retry_after == pytest.approx(45.837906927)
    absurd = orjson.dumps(
        error_json(429, "RESOURCE_EXHAUSTED", "q", [{**RETRY, "retryDelay": "86400s"}])
    )
    assert ADAPTER.map_error(429, {}, absurd, DEP).retry_after is None


def test_invalid_api_key_is_authentication_by_structured_reason() -> None:
    body = orjson.dumps(error_json(400, "INVALID_ARGUMENT", "API key not valid.", [KEY_INVALID]))
    err = ADAPTER.map_error(400, {}, body, DEP)
    assert type(err) is chatgate.AuthenticationError
    assert not err.retryable
    same_text = orjson.dumps(error_json(400, "INVALID_ARGUMENT", "API key not valid."))
    assert type(ADAPTER.map_error(400, {}, same_text, DEP)) is chatgate.BadRequestError


def test_quirk_context_window_is_recognised_by_its_text() -> None:
    text = "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576)."
    err = ADAPTER.map_error(400, {}, orjson.dumps(error_json(400, "INVALID_ARGUMENT", text)), DEP)
    assert type(err) is chatgate.ContextWindowExceededError
    other = orjson.dumps(
        error_json(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
    )
    assert type(ADAPTER.map_error(400, {}, other, DEP)) is chatgate.BadRequestError


def test_non_json_and_list_wrapped_error_bodies() -> None:
    err = ADAPTER.map_error(502, {}, b"<html>bad gateway</html>", DEP)
    assert type(err) is chatgate.InternalServerError
    assert "bad gateway" in err.message
    wrapped = orjson.dumps([error_json(404, "NOT_FOUND", "models/x is not found")])
    err = ADAPTER.map_error(404, {}, wrapped, DEP)
    assert type(err) is chatgate.NotFoundError
    assert err.message == "models/x is not found"
