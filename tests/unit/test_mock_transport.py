"""chatgate.testing: code that calls chatgate, unit-tested with no upstream at all. The
api_base points at a closed port, so a request that reached the network would fail."""

from __future__ import annotations

from typing import Any

import pytest

import chatgate
from chatgate.testing import MockResponse, RecordedRequest, mock_transport
from chatgate.transport import http

CLOSED = "http://127.0.0.1:9/v1"
HI = [{"role": "user", "content": "hi"}]


def answer(text: str, model: str = "gpt-4o") -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }


def test_a_blocking_call_is_answered_by_the_handler_with_the_exact_request() -> None:
    with mock_transport(lambda request: MockResponse.json(answer("hello"))) as transport:
        response = chatgate.completion(
            model="openai/gpt-4o", messages=HI, api_key="sk-test", api_base=CLOSED, temperature=0
        )
    assert response.content == "hello"
    assert response.cost is not None
    assert response.cost > 0
    [sent] = transport.requests
    assert sent.url == CLOSED + "/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-test"
    assert sent.json() == {"model": "gpt-4o", "messages": HI, "temperature": 0}
    assert "sk-test" not in repr(sent)


async def test_a_stream_is_read_chunk_by_chunk_from_the_handler() -> None:
    def chunk(text: str) -> dict[str, Any]:
        return {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }

    events = [chunk("Hel"), chunk("lo")]
    with mock_transport(lambda request: MockResponse.sse(events)):
        stream = await chatgate.acompletion(
            model="openai/gpt-4o", messages=HI, api_key="k", api_base=CLOSED, stream=True
        )
        pieces = [c.choices[0].delta.content async for c in stream if c.choices]
    assert pieces == ["Hel", "lo"]
    assert stream.final().content == "Hello"


async def test_an_async_handler_sees_the_anthropic_wire_format() -> None:
    async def upstream(request: RecordedRequest) -> MockResponse:
        body = request.json()
        assert body["system"] == "be brief"
        return MockResponse.json(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": "short"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 1},
            }
        )

    messages = [{"role": "system", "content": "be brief"}, *HI]
    with mock_transport(upstream) as transport:
        response = await chatgate.acompletion(
            model="anthropic/claude-sonnet-4-20250514", messages=messages, api_key="k"
        )
    assert response.content == "short"
    assert transport.requests[0].url.endswith("/v1/messages")


async def test_an_error_status_becomes_the_sdk_error_class() -> None:
    error = {"error": {"message": "slow down", "type": "rate_limit_error"}}
    reply = MockResponse.json(error, status=429, headers={"retry-after": "7"})
    with mock_transport(lambda request: reply), pytest.raises(chatgate.RateLimitError) as caught:
        await chatgate.acompletion(model="openai/gpt-4o", messages=HI, api_key="k", api_base=CLOSED)
    assert caught.value.retry_after == 7


async def test_what_the_handler_raises_is_what_the_call_sees() -> None:
    def down(request: RecordedRequest) -> MockResponse:
        raise chatgate.APIConnectionError("the upstream is down")

    with mock_transport(down), pytest.raises(chatgate.APIConnectionError, match="down"):
        await chatgate.acompletion(model="openai/gpt-4o", messages=HI, api_key="k", api_base=CLOSED)


def test_the_previous_transport_is_back_after_the_block() -> None:
    before = http.current_transport()
    with mock_transport(lambda request: MockResponse()) as transport:
        assert http.current_transport() is transport
    assert http.current_transport() is before


def test_a_router_goes_through_the_mock_too() -> None:
    entry = {"model": "openai/gpt-4o", "api_key": "k", "api_base": CLOSED}
    router = chatgate.Router(model_list=[{"model_name": "smart", "params": entry}])
    with mock_transport(lambda request: MockResponse.json(answer("routed"))):
        response = router.completion("smart", HI)
    assert response.content == "routed"
