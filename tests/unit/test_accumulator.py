from __future__ import annotations

from chatgate.stream import StreamAccumulator
from chatgate.types import ChatChunk


def chunk(delta: dict[str, object], finish: str | None = None, index: int = 0) -> ChatChunk:
    return ChatChunk.model_validate(
        {
            "id": "c",
            "model": "m",
            "created": 5,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }
    )


def test_accumulates_text_reasoning_and_multiple_choices() -> None:
    acc = StreamAccumulator()
    for c in (
        chunk({"role": "assistant", "reasoning_content": "hm"}),
        chunk({"content": "Hel"}),
        chunk({"content": "Hi"}, index=1),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        chunk({}, "length", index=1),
    ):
        acc.add(c)
    response = acc.response()
    assert [(ch.index, ch.message.content, ch.finish_reason) for ch in response.choices] == [
        (0, "Hello", "stop"),
        (1, "Hi", "length"),
    ]
    assert response.choices[0].message.reasoning_content == "hm"
    assert response.id == "c"
    assert response.created == 5


def test_tool_calls_reassembled_by_index_even_interleaved() -> None:
    acc = StreamAccumulator()
    acc.add(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "b",
                        "type": "function",
                        "function": {"name": "g", "arguments": "[1"},
                    }
                ]
            }
        )
    )
    acc.add(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "a",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        )
    )
    acc.add(
        chunk(
            {
                "tool_calls": [
                    {"index": 1, "function": {"arguments": ",2]"}},
                    {"index": 0, "function": {"arguments": "{}"}},
                ]
            }
        )
    )
    acc.add(chunk({}, "tool_calls"))
    calls = acc.response().choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("a", "f", "{}"),
        ("b", "g", "[1,2]"),
    ]
    assert acc.response().choices[0].message.content is None


def test_tool_call_provider_extras_survive_accumulation() -> None:
    acc = StreamAccumulator()
    acc.add(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "a",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                        "extra_content": {"google": {"thought_signature": "sig"}},
                    }
                ]
            }
        )
    )
    acc.add(chunk({}, "tool_calls"))
    calls = acc.response().choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].model_extra == {"extra_content": {"google": {"thought_signature": "sig"}}}


def test_delta_extras_are_accumulated_onto_the_message() -> None:
    acc = StreamAccumulator()
    acc.add(chunk({"thinking_blocks": [{"type": "thinking", "thinking": "a", "signature": "s1"}]}))
    acc.add(chunk({"thinking_blocks": [{"type": "thinking", "thinking": "b", "signature": "s2"}]}))
    acc.add(chunk({"content": "x"}, "stop"))
    message = acc.response().choices[0].message
    assert message.model_extra == {
        "thinking_blocks": [
            {"type": "thinking", "thinking": "a", "signature": "s1"},
            {"type": "thinking", "thinking": "b", "signature": "s2"},
        ]
    }


def test_streamed_logprobs_and_choice_extras_reach_the_final_choice() -> None:
    def with_choice(**choice: object) -> ChatChunk:
        return ChatChunk.model_validate({"choices": [{"index": 0, "delta": {}, **choice}]})

    first = {"content": [{"token": "Hi", "logprob": -0.1}], "refusal": None}
    second = {"content": [{"token": "!", "logprob": -0.2}], "refusal": None}
    acc = StreamAccumulator()
    acc.add(with_choice(logprobs=first))
    acc.add(with_choice(logprobs=second))
    acc.add(with_choice(finish_reason="stop", native_finish_reason="STOP"))
    (choice,) = acc.response().choices
    assert choice.logprobs == {"content": [*first["content"], *second["content"]], "refusal": None}
    assert choice.model_extra == {"native_finish_reason": "STOP"}
    plain = StreamAccumulator()
    plain.add(with_choice(finish_reason="stop"))
    assert "logprobs" not in plain.response().choices[0].model_fields_set  # not sent as null
