"""Gemini SSE stream -> canonical chunks, under any split of the bytes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import chatgate
from chatgate.providers.base import Deployment
from chatgate.providers.gemini import ADAPTER
from chatgate.stream import StreamAccumulator
from chatgate.types import ChatChunk, ChatRequest
from tests.fakes.gemini_server import candidate_json, error_json, response_json, usage_json

DEP = Deployment("gemini", "gemini-2.5-flash", "https://g.example/v1beta", api_key="k")
REQ = ChatRequest.model_validate(
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "q"}], "stream": True}
)

EVENTS: list[dict[str, Any]] = [
    response_json(
        candidate_json({"text": "hmm", "thought": True}, finish_reason=None),
        usage=usage_json(5, 0),
    ),
    response_json(candidate_json({"text": "Héllo "}, finish_reason=None), usage=usage_json(5, 1)),
    response_json(
        candidate_json(
            {"text": "wörld"},
            {"functionCall": {"name": "get", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "put", "args": {}}},
        ),
        usage=usage_json(5, 9, thoughtsTokenCount=2),
    ),
]
WIRE = b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in EVENTS)


def run(pieces: list[bytes]) -> list[ChatChunk]:
    framer, translator = ADAPTER.new_stream(REQ, DEP)
    chunks = [c for p in pieces for e in framer.feed(p) for c in translator.feed(e)]
    return chunks + [c for e in framer.flush() for c in translator.feed(e)] + translator.finish()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def test_chunks_follow_openai_order() -> None:
    chunks = run([WIRE])
    deltas = [
        c.choices[0].delta.model_dump(exclude_none=True) if c.choices else None for c in chunks
    ]
    assert deltas == [
        {"role": "assistant"},
        {"reasoning_content": "hmm"},
        {"content": "Héllo "},
        {"content": "wörld"},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_resp-fake-1_0",
                    "type": "function",
                    "function": {"name": "get", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Oslo"}'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_resp-fake-1_1",
                    "type": "function",
                    "function": {"name": "put", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {},
        None,
    ]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 11
    assert chunks[-1].usage.completion_tokens_details is not None
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 2
    assert {c.id for c in chunks} == {"resp-fake-1"}
    assert {c.model for c in chunks} == {"gemini-2.5-flash"}


@given(st.lists(st.integers(min_value=0, max_value=len(WIRE)), max_size=12))
def test_any_split_gives_the_same_answer(cuts: list[int]) -> None:
    expected = [c.model_dump(exclude={"created"}) for c in run([WIRE])]
    assert [c.model_dump(exclude={"created"}) for c in run(split(WIRE, cuts))] == expected


def test_accumulated_answer() -> None:
    acc = StreamAccumulator()
    for chunk in run([WIRE]):
        acc.add(chunk)
    final = acc.response()
    assert final.content == "Héllo wörld"
    assert final.choices[0].message.reasoning_content == "hmm"
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get", '{"city":"Oslo"}'),
        ("put", "{}"),
    ]


def test_two_candidates_finish_separately() -> None:
    events = [
        response_json(
            candidate_json({"text": "a"}, index=0),
            candidate_json({"text": "b"}, finish_reason=None, index=1),
        ),
        response_json(candidate_json({"text": "c"}, finish_reason="MAX_TOKENS", index=1)),
    ]
    wire = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    acc = StreamAccumulator()
    for chunk in run([wire]):
        acc.add(chunk)
    final = acc.response()
    assert [(c.message.content, c.finish_reason) for c in final.choices] == [
        ("a", "stop"),
        ("bc", "length"),
    ]


def test_stream_without_finish_reason_raises() -> None:
    event = response_json(candidate_json({"text": "a"}, finish_reason=None))
    with pytest.raises(chatgate.APIConnectionError, match="no finishReason"):
        run([b"data: " + orjson.dumps(event) + b"\n\n"])
    with pytest.raises(chatgate.APIConnectionError):
        run([b""])


def test_error_event_and_blocked_prompt_raise_mapped_errors() -> None:
    error = b"data: " + orjson.dumps(error_json(503, "UNAVAILABLE", "overloaded")) + b"\n\n"
    with pytest.raises(chatgate.InternalServerError, match="overloaded"):
        run([error])
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}
    with pytest.raises(chatgate.ContentPolicyViolationError):
        run([b"data: " + orjson.dumps(blocked) + b"\n\n"])
    with pytest.raises(chatgate.APIConnectionError):
        run([b"data: {not json\n\n"])


def test_a_streamed_calls_thought_signature_reaches_the_final_answer() -> None:
    call = {"functionCall": {"name": "get", "args": {}}, "thoughtSignature": "c2ln"}
    wire = b"data: " + orjson.dumps(response_json(candidate_json(call))) + b"\r\n\r\n"
    acc = StreamAccumulator()
    for chunk in run([wire]):
        acc.add(chunk)
    (tool_call,) = acc.response().choices[0].message.tool_calls or []
    assert tool_call.model_extra == {"extra_content": {"google": {"thought_signature": "c2ln"}}}
