"""Anthropic answers, streams and errors -> canonical responses, chunks and our error tree."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatgate import errors
from chatgate.providers.anthropic import ADAPTER
from chatgate.providers.anthropic.errors import is_context_window_message
from chatgate.providers.base import Deployment
from chatgate.stream import StreamAccumulator
from chatgate.transport.sse import SSEDecoder
from chatgate.types import ChatChunk, ChatRequest, ChatResponse
from tests.fakes.anthropic_server import error_body, events_for, message_json, sse, usage_json

DEP = Deployment("anthropic", "claude-sonnet-4-20250514", "http://x", "k")
PLAIN = ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}]})
JSON_MODE = ChatRequest.model_validate(
    {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {}}},
    }
)
THINK = {"type": "thinking", "thinking": "let me see", "signature": "EqQBCgIYAh=="}
TOOL = {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Oslo"}}
TOOL2 = {"type": "tool_use", "id": "toolu_02", "name": "time", "input": {"tz": "UTC"}}
MIXED = message_json(
    [THINK, {"type": "text", "text": "Checking."}, TOOL, TOOL2],
    stop_reason="tool_use",
    usage=usage_json(10, 20, cache_read=100, cache_write=5),
)


def parse(message: dict[str, Any], request: ChatRequest = PLAIN) -> ChatResponse:
    return ADAPTER.parse_response(orjson.dumps(message), request, DEP)


def test_parse_text_thinking_tools_and_cache_usage() -> None:
    response = parse(MIXED)
    assert response.id == "msg_fake123"
    assert response.model == "claude-sonnet-4-20250514"
    message = response.choices[0].message
    assert message.content == "Checking."
    assert message.reasoning_content == "let me see"
    assert message.model_extra == {"thinking_blocks": [THINK]}
    assert message.tool_calls is not None
    assert [
        (c.id, c.function.name, orjson.loads(c.function.arguments)) for c in message.tool_calls
    ] == [
        ("toolu_01", "weather", {"city": "Oslo"}),
        ("toolu_02", "time", {"tz": "UTC"}),
    ]
    assert response.finish_reason == "tool_calls"
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (115, 20, 135)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.prompt_tokens_details.cache_creation_tokens == 5


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    assert parse(message_json("x", stop_reason=stop_reason)).finish_reason == finish


def test_stop_sequence_is_kept_on_the_choice() -> None:
    response = parse(message_json("x", stop_reason="stop_sequence", stop_sequence="END"))
    assert response.choices[0].model_extra == {"stop_sequence": "END"}


def test_json_schema_tool_answer_is_the_content() -> None:
    forced = {"type": "tool_use", "id": "toolu_9", "name": "out", "input": {"a": 1}}
    response = parse(message_json([forced], stop_reason="tool_use"), JSON_MODE)
    assert response.content == '{"a":1}'
    assert response.choices[0].message.tool_calls is None
    assert response.finish_reason == "stop"


def test_a_body_that_is_not_a_message_is_a_connection_error() -> None:
    with pytest.raises(errors.APIConnectionError):
        ADAPTER.parse_response(b"<html>", PLAIN, DEP)
    with pytest.raises(errors.APIConnectionError):
        ADAPTER.parse_response(b'{"type": "message"}', PLAIN, DEP)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "cls", "retryable"),
    [
        (400, "invalid_request_error", errors.BadRequestError, False),
        (401, "authentication_error", errors.AuthenticationError, False),
        (403, "permission_error", errors.PermissionDeniedError, False),
        (404, "not_found_error", errors.NotFoundError, False),
        (413, "request_too_large", errors.BadRequestError, False),
        (429, "rate_limit_error", errors.RateLimitError, True),
        (500, "api_error", errors.InternalServerError, True),
        (529, "overloaded_error", errors.InternalServerError, True),
    ],
)
def test_error_types_map_to_classes(
    status: int, kind: str, cls: type[errors.APIStatusError], retryable: bool
) -> None:
    err = ADAPTER.map_error(status, {}, orjson.dumps(error_body(kind, "boom")), DEP)
    assert type(err) is cls
    assert err.status_code == status
    assert err.retryable is retryable
    assert err.message == "boom"
    assert err.request_id == "req_x"
    assert err.body == error_body(kind, "boom")


def test_rate_limit_retry_after_header() -> None:
    body = orjson.dumps(error_body("rate_limit_error", "slow"))
    err = ADAPTER.map_error(429, {"retry-after": "12"}, body, DEP)
    assert err.retry_after == 12.0


def test_quirk_prompt_too_long_is_context_window_exceeded() -> None:
    body = error_body("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum")
    err = ADAPTER.map_error(400, {}, orjson.dumps(body), DEP)
    assert type(err) is errors.ContextWindowExceededError
    assert is_context_window_message(
        "input length and `max_tokens` exceed context limit: 199000 + 8192 > 200000, "
        "decrease input length or `max_tokens` and try again"
    )
    # the same words under another error type, or other wording, are not the quirk
    other = error_body("api_error", "prompt is too long: 1 tokens > 0 maximum")
    assert type(ADAPTER.map_error(500, {}, orjson.dumps(other), DEP)) is errors.InternalServerError
    assert not is_context_window_message("messages: prompt is too long for my taste")


def test_non_json_error_body_keeps_the_text() -> None:
    err = ADAPTER.map_error(502, {}, b"Bad Gateway", DEP)
    assert type(err) is errors.InternalServerError
    assert err.message == "Bad Gateway"


# --- streaming ----------------------------------------------------------------------------------


def run_stream(data: bytes, cuts: list[int], request: ChatRequest = PLAIN) -> list[ChatChunk]:
    framer, translator = ADAPTER.new_stream(request, DEP)
    chunks: list[ChatChunk] = []
    last = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        for event in framer.feed(data[last:cut]):
            chunks += translator.feed(event)
        last = cut
    for event in framer.flush():
        chunks += translator.feed(event)
    return chunks + translator.finish()


def accumulate(chunks: list[ChatChunk]) -> ChatResponse:
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.response()


MIXED_SSE = b"".join(sse(e) for e in events_for(MIXED))


@given(st.lists(st.integers(min_value=0, max_value=len(MIXED_SSE)), max_size=12))
def test_stream_under_any_chunk_split_matches_non_stream(cuts: list[int]) -> None:
    chunks = run_stream(MIXED_SSE, cuts)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    final = accumulate(chunks)
    expected = parse(MIXED)
    assert final.choices[0].message.content == expected.content
    assert final.choices[0].message.reasoning_content == "let me see"
    assert final.choices[0].message.tool_calls == expected.choices[0].message.tool_calls
    assert final.finish_reason == "tool_calls"
    assert final.usage == expected.usage


def test_stream_tool_call_indices_count_tool_calls_only() -> None:
    chunks = run_stream(MIXED_SSE, [])
    firsts = [
        call
        for c in chunks
        for choice in c.choices
        for call in choice.delta.tool_calls or ()
        if call.id is not None
    ]
    assert [(c.index, c.id, c.function and c.function.name) for c in firsts] == [
        (0, "toolu_01", "weather"),
        (1, "toolu_02", "time"),
    ]


def test_stream_thinking_signature_arrives_with_the_block() -> None:
    chunks = run_stream(MIXED_SSE, [])
    blocks = [
        (choice.delta.model_extra or {}).get("thinking_blocks")
        for c in chunks
        for choice in c.choices
    ]
    assert [b for b in blocks if b] == [[THINK]]


def test_stream_json_schema_tool_input_is_content() -> None:
    forced = {"type": "tool_use", "id": "toolu_9", "name": "out", "input": {"a": [1, 2]}}
    data = b"".join(sse(e) for e in events_for(message_json([forced], stop_reason="tool_use")))
    final = accumulate(run_stream(data, [], JSON_MODE))
    assert final.content == '{"a":[1,2]}'
    assert final.choices[0].message.tool_calls is None
    assert final.finish_reason == "stop"


def test_stream_usage_from_message_delta_is_cumulative() -> None:
    events = events_for(message_json("hi", usage=usage_json(10, 7, cache_read=3)))
    events[-2]["usage"] = {"output_tokens": 7, "input_tokens": 12}
    usage = run_stream(b"".join(sse(e) for e in events), [])[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (15, 7)


def test_stream_error_event_raises_the_mapped_error() -> None:
    events = events_for(message_json("hello"))[:3]
    data = b"".join(sse(e) for e in events) + sse(error_body("overloaded_error", "Overloaded"))
    with pytest.raises(errors.InternalServerError, match="Overloaded") as info:
        run_stream(data, [])
    assert info.value.status_code == 529
    assert info.value.retryable


def test_stream_without_message_stop_is_incomplete() -> None:
    events = events_for(message_json("hello"))[:-1]
    with pytest.raises(errors.APIConnectionError, match="message_stop"):
        run_stream(b"".join(sse(e) for e in events), [])


def test_stream_malformed_event_is_a_connection_error() -> None:
    framer = SSEDecoder()
    _, translator = ADAPTER.new_stream(PLAIN, DEP)
    (event,) = framer.feed(b"event: message_start\ndata: {oops\n\n")
    with pytest.raises(errors.APIConnectionError):
        translator.feed(event)
