"""chatgate against the fake Anthropic upstream over real sockets, and proof that the fake (and
the gateway-side reverse translation) speak the wire format the official anthropic SDK parses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import orjson
import pytest

import chatgate
from chatgate.providers.anthropic.reverse import anthropic_message
from chatgate.providers.anthropic.reverse_stream import ChunksToAnthropicEvents, encode
from chatgate.types import ChatChunk, ChatResponse
from tests.fakes.anthropic_server import (
    FakeAnthropic,
    Reply,
    error_body,
    events_for,
    message_json,
    usage_json,
)

MODEL = "anthropic/claude-sonnet-4-20250514"
HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server  # type: ignore[misc]


def call(fake: FakeAnthropic, messages: list[Any] | None = None, **kw: Any) -> Any:
    return chatgate.completion(
        model=MODEL, messages=messages or HI, api_key="sk-ant-test", api_base=fake.base_url, **kw
    )


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0) as c:
        yield c


# --- chatgate -> fake -------------------------------------------------------------------------


def test_non_stream_sends_exact_body_and_reads_answer(fake: FakeAnthropic) -> None:
    response = call(
        fake,
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is up"}],
        temperature=0.2,
        max_tokens=100,
        stop=["END"],
    )
    assert response.content == "echo: what is up"
    assert response.finish_reason == "stop"
    assert response.meta.provider == "anthropic"
    assert response.meta.request_id == "req_fake_1"
    sent = fake.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": "what is up"}],
        "temperature": 0.2,
        "stop_sequences": ["END"],
    }


def tool_turn(calls: list[dict[str, Any]], text: str | None = None) -> dict[str, Any]:
    blocks = ([{"type": "text", "text": text}] if text else []) + [
        {"type": "tool_use", **c} for c in calls
    ]
    return message_json(blocks, stop_reason="tool_use")


def test_three_round_tool_conversation_sends_exact_bodies(fake: FakeAnthropic) -> None:
    fake.script(
        Reply(json=tool_turn([{"id": "toolu_A", "name": "weather", "input": {"city": "Oslo"}}])),
        Reply(
            json=tool_turn(
                [
                    {"id": "toolu_B", "name": "weather", "input": {"city": "Bergen"}},
                    {"id": "toolu_C", "name": "weather", "input": {"city": "Tromsø"}},
                ],
                "Two more.",
            )
        ),
        Reply(json=message_json("Oslo 5, Bergen 7, Tromsø -2.")),
    )
    messages: list[Any] = [{"role": "user", "content": "weather in Oslo, Bergen, Tromsø?"}]
    for _ in range(3):
        response = call(fake, messages, tools=[WEATHER], max_tokens=200)
        message = response.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        for tc in message.tool_calls or ():
            city = orjson.loads(tc.function.arguments)["city"]
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": f"{city}: ok"})
    assert response.content == "Oslo 5, Bergen 7, Tromsø -2."
    assert response.finish_reason == "stop"
    tool = {
        "name": "weather",
        "description": "Weather for a city",
        "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
    }
    bodies = [r.body for r in fake.requests]
    assert all(b["tools"] == [tool] and b["max_tokens"] == 200 for b in bodies)
    assert bodies[2]["messages"] == [
        {"role": "user", "content": "weather in Oslo, Bergen, Tromsø?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_A", "name": "weather", "input": {"city": "Oslo"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_A", "content": "Oslo: ok"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Two more."},
                {
                    "type": "tool_use",
                    "id": "toolu_B",
                    "name": "weather",
                    "input": {"city": "Bergen"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_C",
                    "name": "weather",
                    "input": {"city": "Tromsø"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_B", "content": "Bergen: ok"},
                {"type": "tool_result", "tool_use_id": "toolu_C", "content": "Tromsø: ok"},
            ],
        },
    ]
    assert bodies[0]["messages"] == bodies[2]["messages"][:1]
    assert bodies[1]["messages"] == bodies[2]["messages"][:3]


def test_image_urls_are_sent_as_url_sources(fake: FakeAnthropic) -> None:
    # data URLs: tests/conformance/test_answers.py
    parts = [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
    ]
    call(fake, [{"role": "user", "content": parts}])
    assert fake.last.body["messages"][0]["content"] == [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/b.png"}},
    ]


def test_unsupported_param_raises_before_any_request(fake: FakeAnthropic) -> None:
    with pytest.raises(chatgate.UnsupportedParamsError, match="seed"):
        call(fake, seed=3)
    with pytest.raises(chatgate.InvalidRequestError, match="temperature"):
        call(fake, temperature=1.2)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("status", "kind", "cls", "retryable"),
    [(413, "request_too_large", chatgate.BadRequestError, False)],
)  # the statuses every provider shares: tests/conformance/test_errors.py
@pytest.mark.parametrize("stream", [False, True])
def test_errors_map_with_flags(
    fake: FakeAnthropic,
    status: int,
    kind: str,
    cls: type[chatgate.APIStatusError],
    retryable: bool,
    stream: bool,
) -> None:
    fake.script(
        Reply(status=status, json=error_body(kind, "it broke"), headers={"retry-after": "3"})
    )
    with pytest.raises(cls) as info:
        call(fake, stream=stream)
    err = info.value
    assert type(err) is cls
    assert (err.status_code, err.retryable, err.provider) == (status, retryable, "anthropic")
    assert err.retry_after == 3.0
    assert err.message == "it broke"


def test_prompt_too_long_is_context_window_exceeded(fake: FakeAnthropic) -> None:
    message = "prompt is too long: 208310 tokens > 200000 maximum"
    fake.script(Reply(status=400, json=error_body("invalid_request_error", message)))
    with pytest.raises(chatgate.ContextWindowExceededError):
        call(fake)


# --- the official SDK parses the fake ------------------------------------------------------------


def test_sdk_parses_fake_message_with_thinking_and_tools(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig=="}
    tool = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
    fake.script(Reply(json=message_json([thinking, tool], stop_reason="tool_use")))
    out = client.messages.create(model="claude-x", max_tokens=10, messages=HI)
    assert out.stop_reason == "tool_use"
    assert out.content[0].type == "thinking"
    assert out.content[1].type == "tool_use"
    assert out.content[1].input == {"city": "Oslo"}
    assert out.usage.input_tokens == 10


def test_sdk_accumulates_fake_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    thinking = {"type": "thinking", "thinking": "let me think", "signature": "sig=="}
    tool = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
    answer = message_json(
        [thinking, {"type": "text", "text": "Sure."}, tool],
        stop_reason="tool_use",
        usage=usage_json(11, 22, cache_read=4),
    )
    fake.script(Reply(chunks=events_for(answer)))
    with client.messages.stream(model="claude-x", max_tokens=10, messages=HI) as stream:
        final = stream.get_final_message()
    assert final.to_dict(exclude_none=True) == {
        k: v for k, v in answer.items() if v is not None
    }  # what was streamed accumulates to exactly the message the events were cut from


@pytest.mark.parametrize(
    ("status", "kind", "cls"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (529, "overloaded_error", anthropic.InternalServerError),
    ],
)
def test_sdk_maps_fake_errors(
    fake: FakeAnthropic, client: anthropic.Anthropic, status: int, kind: str, cls: type
) -> None:
    fake.script(Reply(status=status, json=error_body(kind, "nope")))
    with pytest.raises(cls) as info:
        client.messages.create(model="claude-x", max_tokens=10, messages=HI)
    assert info.value.status_code == status
    assert info.value.request_id == "req_fake_1"


# --- the reverse direction: our Anthropic output parses with the SDK --------------------------


def canonical_chunks() -> list[ChatChunk]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return ChatChunk.model_validate({"id": "chatcmpl-1", "model": "gpt-x", "choices": [choice]})

    def tool(index: int, id_: str | None, name: str | None, args: str) -> dict[str, Any]:
        fn = {"arguments": args, **({"name": name} if name else {})}
        return {"index": index, **({"id": id_, "type": "function"} if id_ else {}), "function": fn}

    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "thinking "}),
        chunk({"reasoning_content": "hard"}),
        chunk({"content": "Let me "}),
        chunk({"content": "check."}),
        chunk({"tool_calls": [tool(0, "call_1", "weather", "")]}),
        chunk({"tool_calls": [tool(0, None, None, '{"city":')]}),
        chunk({"tool_calls": [tool(0, None, None, '"Oslo"}')]}),
        chunk({"tool_calls": [tool(1, "call_2", "time", '{"tz":"UTC"}')]}),
        chunk({}, "tool_calls"),
        ChatChunk.model_validate(
            {
                "id": "chatcmpl-1",
                "model": "gpt-x",
                "choices": [],
                "usage": {
                    "prompt_tokens": 30,
                    "completion_tokens": 9,
                    "total_tokens": 39,
                    "prompt_tokens_details": {"cached_tokens": 10},
                },
            }
        ),
    ]


def test_sdk_accumulates_reverse_translated_stream(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    translator = ChunksToAnthropicEvents()
    events = [e for c in canonical_chunks() for e in translator.feed(c)] + translator.finish()
    fake.script(Reply(raw=encode(events), headers={"Content-Type": "text/event-stream"}))
    with client.messages.stream(model="gpt-x", max_tokens=10, messages=HI) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].thinking == "thinking hard"  # type: ignore[union-attr]
    assert final.content[1].text == "Let me check."  # type: ignore[union-attr]
    assert final.content[2].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert final.content[3].id == "toolu_call_2"  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (20, 9)
    assert final.usage.cache_read_input_tokens == 10


def test_sdk_parses_reverse_translated_message(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    response = ChatResponse.model_validate(
        {
            "id": "chatcmpl-2",
            "model": "gpt-x",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Hi",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"a":1}'},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
    )
    fake.script(Reply(json=anthropic_message(response)))
    out = client.messages.create(model="gpt-x", max_tokens=10, messages=HI)
    assert out.stop_reason == "tool_use"
    assert out.content[0].text == "Hi"  # type: ignore[union-attr]
    assert out.content[1].input == {"a": 1}  # type: ignore[union-attr]
    assert out.usage.input_tokens == 5
