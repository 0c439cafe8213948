"""WireChunk and StreamAccumulator.add_wire: the fold from parsed JSON must give exactly what
validating each chunk and folding it with add() gives, for any chunk, and fall back (changing
nothing) on whatever it does not handle itself."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.accumulator import StreamAccumulator
from chatgate.errors import APIConnectionError
from chatgate.providers.base import Deployment
from chatgate.providers.openai import OpenAIStreamTranslator
from chatgate.transport.sse import SSEEvent
from chatgate.types import ChatChunk
from chatgate.wire_chunk import WireChunk, typed_chunk

DEPLOYMENT = Deployment(provider="openai", model="gpt-4o-mini", api_base="http://127.0.0.1:9")
text = st.one_of(st.none(), st.text(max_size=5))

tool_call = st.fixed_dictionaries(
    {"index": st.integers(0, 2)},
    optional={
        "id": text,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({}, optional={"name": text, "arguments": text}),
        "thought_signature": st.text(max_size=3),
    },
)
delta = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from([None, "assistant"]),
        "content": text,
        "reasoning_content": text,
        "refusal": text,
        "tool_calls": st.one_of(st.none(), st.lists(tool_call, max_size=2)),
        "thinking_blocks": st.lists(st.fixed_dictionaries({"thinking": st.text(max_size=3)})),
    },
)
choice = st.fixed_dictionaries(
    {"delta": delta},
    optional={
        "index": st.integers(0, 2),
        "finish_reason": text,
        "logprobs": st.one_of(st.none(), st.just({"content": []})),
        "vendor_field": st.integers(0, 9),
    },
)
usage = st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 9), "completion_tokens": st.just(2)},
    optional={"prompt_tokens_details": st.just({"cached_tokens": 1})},
)
chunk_data = st.fixed_dictionaries(
    {"choices": st.lists(choice, max_size=2)},
    optional={
        "id": st.text(max_size=3),
        "model": st.text(max_size=3),
        "created": st.integers(0, 10**10),
        "object": st.just("chat.completion.chunk"),
        "system_fingerprint": text,
        "usage": st.one_of(st.none(), usage),
        "extra_top": st.integers(0, 9),
    },
)
# one fault at a time, at the top, in a choice or in its delta: each either valid after
# coercion (the typed path's business) or invalid (both paths must fail)
odd = st.sampled_from([None, 5, 2.0, 2.5, "17", True, [1], {"a": 1}, "assistant", "user"])
top_fault = st.tuples(
    st.sampled_from(["id", "model", "created", "object", "system_fingerprint", "choices", "usage"]),
    odd,
)
choice_fault = st.tuples(st.sampled_from(["index", "delta", "finish_reason", "logprobs"]), odd)
delta_fault = st.tuples(
    st.sampled_from(["role", "content", "reasoning_content", "refusal", "tool_calls"]), odd
)


@st.composite
def chunks(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = draw(chunk_data)
    where = draw(st.sampled_from(["none", "top", "choice", "delta"]))
    if where == "top":
        key, value = draw(top_fault)
        data[key] = value
    elif where != "none" and data["choices"]:
        target = data["choices"][-1]
        key, value = draw(choice_fault if where == "choice" else delta_fault)
        (target if where == "choice" else target["delta"])[key] = value
    return data


def fold_typed(stream: list[dict[str, Any]]) -> StreamAccumulator | type[Exception]:
    acc = StreamAccumulator()
    for data in stream:
        try:
            acc.add(ChatChunk.model_validate_json(orjson.dumps(data)))
        except ValueError:
            return APIConnectionError
    return acc


def fold_wire(stream: list[dict[str, Any]]) -> StreamAccumulator | type[Exception]:
    """What ChatStream does with a WireChunk."""
    acc = StreamAccumulator()
    for data in stream:
        item = WireChunk(orjson.dumps(data), data)
        try:
            if not acc.add_wire(item.data):
                acc.add(item.chunk())
        except APIConnectionError:
            return APIConnectionError
    return acc


@settings(max_examples=400, deadline=None)
@given(st.lists(chunks(), min_size=1, max_size=4))
def test_add_wire_folds_exactly_as_validating_and_add(stream: list[dict[str, Any]]) -> None:
    typed, wire = fold_typed(stream), fold_wire(stream)
    if isinstance(typed, StreamAccumulator):
        assert isinstance(wire, StreamAccumulator)
        assert wire.response().model_dump() == typed.response().model_dump()
        assert wire.usage == typed.usage
    else:
        assert wire is typed


def test_add_wire_takes_the_common_shape_itself_and_leaves_the_rest() -> None:
    acc = StreamAccumulator()
    plain = {"id": "c", "model": "m", "created": 1, "choices": [{"delta": {"content": "hi"}}]}
    assert acc.add_wire(plain)
    with_tools = {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "t"}]}}]}
    assert not acc.add_wire(with_tools)
    bad_second_choice = {"choices": [{"delta": {"content": "x"}}, {"delta": {"content": 5}}]}
    assert not acc.add_wire(bad_second_choice)
    assert acc.response().content == "hi"  # a refused chunk changed nothing


def test_wire_chunk_types_once_and_keeps_its_bytes() -> None:
    wire = b'{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}'
    item = WireChunk(wire, orjson.loads(wire))
    typed = item.chunk()
    assert typed is item.chunk() is typed_chunk(item)
    assert typed.choices[0].delta.content == "hi"
    assert typed.wire_json == wire


def test_a_chunk_that_is_not_one_raises_naming_the_field() -> None:
    wire = b'{"choices":[{"index":0,"delta":{"content":5}}]}'
    with pytest.raises(APIConnectionError, match=r"malformed stream chunk: choices\.0\.delta"):
        WireChunk(wire, orjson.loads(wire)).chunk()


@pytest.mark.parametrize(
    ("data", "why"),
    [("{not json", "not JSON"), ("[1, 2]", "not a JSON object"), ('"text"', "not a JSON object")],
)
def test_translator_rejects_what_is_not_a_json_object(data: str, why: str) -> None:
    translator = OpenAIStreamTranslator(DEPLOYMENT)
    with pytest.raises(APIConnectionError, match=why) as caught:
        translator.feed(SSEEvent(data=data))
    assert caught.value.provider == "openai"


def test_translator_keeps_the_exact_bytes() -> None:
    translator = OpenAIStreamTranslator(DEPLOYMENT)
    data = '{"id":"c",  "choices":[{"index":0,"delta":{"content":"é"},"finish_reason":"stop"}]}'
    (item,) = translator.feed(SSEEvent(data=data))
    assert item.wire_json == data.encode()
    assert translator.finish() == []  # a finish_reason was seen: complete without [DONE]
