"""ConverseStream bytes -> chunks: frames decoded under any chunk split, every event kind,
exception events, corrupt and incomplete streams; pure."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.errors import APIConnectionError, RateLimitError
from chatgate.providers.base import Deployment
from chatgate.providers.bedrock.stream import BedrockStreamTranslator, EventStreamFramer
from chatgate.stream import StreamAccumulator
from chatgate.types import ChatChunk
from tests.fakes.bedrock_server import event, exception, text_events, tool_events, usage_json

DEP = Deployment(provider="bedrock", model="m", api_base="http://x")


def run(
    data: bytes, cuts: list[int] | None = None, json_tool: str | None = None
) -> list[ChatChunk]:
    framer = EventStreamFramer(DEP)
    translator = BedrockStreamTranslator(DEP, json_tool=json_tool, created=1)
    points = sorted({c % (len(data) + 1) for c in cuts or []})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    chunks = [c for piece in pieces for e in framer.feed(piece) for c in translator.feed(e)]
    chunks += [c for e in framer.flush() for c in translator.feed(e)]
    return chunks + translator.finish()


MIXED = b"".join(
    [
        event("messageStart", {"role": "assistant"}),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}},
        ),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s"}}},
        ),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hé"}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "llo"}}),
        *tool_events(2, "tu_1", "f", ['{"a"', ": 1}"]),
        *tool_events(3, "tu_2", "g", ["{}"]),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": usage_json(4, 6), "metrics": {"latencyMs": 1}}),
    ]
)


def fold(chunks: list[ChatChunk]) -> dict[str, Any]:
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.response().model_dump(exclude={"id", "created"}, exclude_none=True)


def test_canonical_chunk_sequence() -> None:
    chunks = run(MIXED)
    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", "")
    tool_start = chunks[4].choices[0].delta.tool_calls
    assert tool_start is not None
    assert tool_start[0].model_dump(exclude_none=True) == {
        "index": 0,
        "id": "tu_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 10
    assert len({c.id for c in chunks}) == 1


EXPECTED = fold(run(MIXED))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_chunk_split_gives_the_same_answer(cuts: list[int]) -> None:
    assert fold(run(MIXED, cuts)) == EXPECTED


def test_folded_answer() -> None:
    message = EXPECTED["choices"][0]["message"]
    assert message["content"] == "Héllo"
    assert message["reasoning_content"] == "hmm"
    assert [(c["id"], c["function"]["arguments"]) for c in message["tool_calls"]] == [
        ("tu_1", '{"a": 1}'),
        ("tu_2", "{}"),
    ]
    assert EXPECTED["choices"][0]["finish_reason"] == "tool_calls"


def test_json_tool_streams_as_content() -> None:
    data = b"".join(
        [
            event("messageStart", {"role": "assistant"}),
            *tool_events(0, "tu", "answer", ['{"n"', ": 1}"]),
            event("messageStop", {"stopReason": "tool_use"}),
        ]
    )
    folded = fold(run(data, json_tool="answer"))
    assert folded["choices"][0]["message"] == {"role": "assistant", "content": '{"n": 1}'}
    assert folded["choices"][0]["finish_reason"] == "stop"


def test_exception_event_raises_mapped_error() -> None:
    data = b"".join([*text_events(["a"])[:2], exception("throttlingException", "slow")])
    with pytest.raises(RateLimitError, match="slow"):
        run(data)


def test_incomplete_and_corrupt_streams_raise() -> None:
    whole = b"".join(text_events(["a", "b"]))
    stop_frame = len(text_events(["a", "b"])[-1]) + len(text_events(["a", "b"])[-2])
    with pytest.raises(APIConnectionError, match="messageStop"):
        run(whole[: len(whole) - stop_frame])
    with pytest.raises(APIConnectionError, match="messageStop"):
        run(whole[: len(whole) - stop_frame + 5])  # a partial trailing frame
    corrupt = bytearray(whole)
    corrupt[20] ^= 0xFF
    with pytest.raises(APIConnectionError, match="corrupt AWS event stream"):
        run(bytes(corrupt))


def test_stream_without_message_start_still_starts_with_role() -> None:
    data = b"".join(text_events(["x"])[1:])
    chunks = run(data)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert fold(chunks)["choices"][0]["message"]["content"] == "x"
