"""The reverse direction (gateway /v1/messages): Anthropic request -> ChatRequest, and canonical
answers -> Anthropic messages and events."""

from __future__ import annotations

from typing import Any

import pytest

from chatgate.errors import InvalidRequestError
from chatgate.providers.anthropic.request import build_body
from chatgate.providers.anthropic.reverse import anthropic_message, chat_request_from_anthropic
from chatgate.providers.anthropic.reverse_stream import ChunksToAnthropicEvents
from chatgate.providers.base import Deployment
from chatgate.types import ChatChunk, ChatResponse, ToolMessage

DEP = Deployment("anthropic", "claude-sonnet-4-20250514", "http://x", "k")

ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-20250514",
    "max_tokens": 300,
    "system": [{"type": "text", "text": "be kind", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s=="},
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"},
                {"type": "text", "text": "so?"},
            ],
        },
    ],
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "temperature": 0.3,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "u1"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "top_k": 4,
}


def test_request_round_trips_to_the_same_anthropic_body() -> None:
    request = chat_request_from_anthropic(ANTHROPIC_BODY)
    assert request.tool_choice == "required"
    assert request.parallel_tool_calls is False
    assert request.user == "u1"
    assert request.stop == ["END"]
    assert isinstance(request.messages[3], ToolMessage)
    assert build_body(request, DEP) == ANTHROPIC_BODY


def test_named_tool_choice_and_stream() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": {"type": "tool", "name": "f"},
        "stream": True,
    }
    request = chat_request_from_anthropic(body)
    assert request.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert request.stream is True
    assert request.stream_options is not None
    assert request.stream_options.include_usage is True


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "system", "content": "x"}], "messages"),
        ([{"role": "bot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": [{"type": "audio"}]}], "messages[0].content[0]"),
        ([], "messages"),
    ],
)
def test_bad_anthropic_requests_name_the_field(messages: list[Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat_request_from_anthropic({"model": "m", "max_tokens": 1, "messages": messages})
    assert info.value.param == param


def response(finish: str, **message: Any) -> ChatResponse:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    usage = {
        "prompt_tokens": 50,
        "completion_tokens": 5,
        "total_tokens": 55,
        "prompt_tokens_details": {"cached_tokens": 30, "cache_creation_tokens": 10},
    }
    return ChatResponse.model_validate(
        {"id": "c1", "model": "gpt-x", "choices": [choice], "usage": usage}
    )


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_response_to_message_stop_reasons_and_usage(finish: str, stop_reason: str) -> None:
    out = anthropic_message(response(finish, content="hi"))
    assert out["stop_reason"] == stop_reason
    assert out["content"] == [{"type": "text", "text": "hi"}]
    assert out["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 10,
    }


def test_response_thinking_blocks_and_stop_sequence_survive() -> None:
    block = {"type": "thinking", "thinking": "t", "signature": "s"}
    resp = response("stop", content="x", reasoning_content="t", thinking_blocks=[block])
    resp.choices[0].stop_sequence = "END"  # type: ignore[attr-defined]
    out = anthropic_message(resp)
    assert out["content"][0] == block
    assert (out["stop_reason"], out["stop_sequence"]) == ("stop_sequence", "END")


def test_chunks_to_events_order_and_indices() -> None:
    translator = ChunksToAnthropicEvents()

    def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        return ChatChunk.model_validate(
            {
                "id": "c",
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    events = []
    for c in [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "a"}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
    ]:
        events += translator.feed(c)
    events += translator.finish()
    assert [(name, data.get("index")) for name, data in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
