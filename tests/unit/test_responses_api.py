"""The Responses API translation, both ways, with no network: requests -> ChatRequest (and the
400s naming what is refused), ChatResponse -> Response and chunks -> stream events, every
output checked by the official openai SDK's own types (strict validation)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from chatgate.errors import InvalidRequestError
from chatgate.responses_api import ChunksToResponseEvents, chat_request_from_responses, encode
from chatgate.responses_api.request import echo_fields
from chatgate.responses_api.response import response_object
from chatgate.types import ChatChunk, ChatResponse
from tests.unit.responses_events import EVENTS


def wire(body: dict[str, Any]) -> dict[str, Any]:
    return chat_request_from_responses(body, "m").wire()


def test_items_tools_and_options_translate() -> None:
    body = {
        "instructions": "sys",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": [],
             "content": [{"type": "reasoning_text", "text": "hm"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2",
             "output": [{"type": "input_text", "text": "two"}]},
        ],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"},
                   "strict": None}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_object"}},
        "max_output_tokens": 9,
        "stream": True,
        "store": True,
        "include": [],
    }  # fmt: skip
    out = wire(body)
    messages = out["messages"]
    assert messages[0] == {"role": "system", "content": "sys"}
    assert messages[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
    }
    assert messages[2]["reasoning_content"] == "hm"
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["c1", "c2"]  # one assistant turn
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "one"}
    assert messages[4]["content"] == [{"type": "text", "text": "two"}]
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["response_format"] == {"type": "json_object"}
    assert out["max_completion_tokens"] == 9
    assert out["stream_options"] == {"include_usage": True}
    assert "store" not in out
    assert "include" not in out


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "x", "include": "reasoning.encrypted_content"}, "include"),
        ({"input": "x", "tools": [{"name": "f"}]}, "tools[0].type"),
        ({"input": "x", "truncation": "middle"}, "truncation"),
        ({"input": "x", "frobnicate": 1}, "frobnicate"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "compaction", "encrypted_content": "x"}]}, "input[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": []}, "input"),
        ({"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"input": "x", "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"input": "x", "temperature": 5}, "temperature"),
    ],
)
def test_refusals_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as bad:
        wire(body)
    assert bad.value.param == param


def answer(message: dict[str, Any], finish: str = "stop") -> ChatResponse:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 6, "cache_creation_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    choice = {"message": message, "finish_reason": finish}
    return ChatResponse.model_validate(
        {"id": "x", "model": "m", "choices": [choice], "usage": usage}
    )


def test_a_chat_response_becomes_a_response() -> None:
    call = {"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}}
    chat = answer({"content": "hi", "reasoning_content": "think", "tool_calls": [call]})
    echo = echo_fields({"input": "x", "tools": [{"type": "function", "name": "f"}]})
    out = Response.model_validate(response_object(chat, echo, response_id="resp_1", created_at=1))
    assert [item.type for item in out.output] == ["reasoning", "message", "function_call"]
    assert out.output_text == "hi"
    assert out.status == "completed"
    assert out.usage is not None
    assert out.usage.input_tokens_details.cached_tokens == 6
    assert out.usage.input_tokens_details.cache_write_tokens == 2
    assert out.usage.output_tokens_details.reasoning_tokens == 1
    assert out.tool_choice == "auto"
    assert out.parallel_tool_calls is True


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_incomplete_answers(finish: str, reason: str) -> None:
    chat = answer({"content": "cut"}, finish)
    out = Response.model_validate(
        response_object(chat, echo_fields({}), response_id="resp_1", created_at=1)
    )
    assert out.status == "incomplete"
    assert out.incomplete_details is not None
    assert out.incomplete_details.reason == reason
    assert out.output[0].status == "incomplete"  # type: ignore[union-attr]


def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
    return ChatChunk.model_validate(
        {"model": "m", "choices": [{"delta": delta, "finish_reason": finish}]}
    )


def test_stream_events_are_the_sdks_and_in_order() -> None:
    events = ChunksToResponseEvents(echo_fields({}), model="m")
    out = events.feed(chunk({"content": "a"}))
    out += events.feed(chunk({"refusal": "no"}))
    out += events.feed(chunk({}, "length"))
    out += events.finish()
    for event in out:
        EVENTS.validate_python(event)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    final = Response.model_validate(out[-1]["response"])
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert out[2]["item"]["content"] == []  # the added item as it was then, not as it ended
    assert encode(out[:1]).startswith(b"event: response.created\ndata: {")


def test_a_failed_stream_ends_with_response_failed() -> None:
    events = ChunksToResponseEvents(echo_fields({}), model="m")
    out = events.fail("upstream went away")  # before any chunk: created comes first
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    failed = EVENTS.validate_python(out[-1])
    assert failed.response.error.message == "upstream went away"
