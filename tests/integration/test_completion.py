"""completion / acompletion against the fake OpenAI upstream over real sockets. What every
provider does (answers, streams breaking or cancelled, tools, errors): tests/conformance/."""

from __future__ import annotations

import logging

import pytest

import chatgate
from chatgate.types import ChatResponse, UserMessage
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    chunk_json,
    completion_json,
    text_stream,
)

HI = [{"role": "user", "content": "hi"}]


def call(fake: FakeOpenAI, **kw: object) -> ChatResponse:
    return chatgate.completion(
        model="openai/gpt-4o-mini", messages=HI, api_key="sk-test", api_base=fake.base_url, **kw
    )


def test_sync_completion_returns_typed_response_with_meta(fake: FakeOpenAI) -> None:
    response = chatgate.completion(
        model="gpt-4o-mini",
        messages=[UserMessage(content="what is up")],
        api_key="sk-test",
        api_base=fake.base_url,
        temperature=0,
    )
    assert response.content == "echo: what is up"
    assert response.finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.prompt_tokens + 4
    assert response.meta.provider == "openai"
    assert response.meta.model == "gpt-4o-mini"
    assert response.meta.request_id == "req_fake_1"
    assert response.meta.latency_ms > 0
    assert not response.truncated
    sent = fake.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-test"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "what is up"}],
        "temperature": 0.0,
    }


async def test_async_completion_and_extra_body_fields_pass_through(fake: FakeOpenAI) -> None:
    fake.script(Reply(json=completion_json("ok", service_tier="default", vendor_x={"a": 1})))
    response = await chatgate.acompletion(
        model="openai/gpt-4o-mini",
        messages=HI,
        api_key="sk-test",
        api_base=fake.base_url,
        extra_body={"top_k": 5},  # a vendor extension: sent as given, not dropped
        seed=7,
    )
    assert response.content == "ok"
    assert response.model_extra == {"service_tier": "default", "vendor_x": {"a": 1}}
    assert fake.last.body["top_k"] == 5
    assert fake.last.body["seed"] == 7
    assert "stream" not in fake.last.body


async def test_a_misspelt_parameter_raises_before_sending_naming_it(fake: FakeOpenAI) -> None:
    with pytest.raises(chatgate.InvalidRequestError) as caught:
        await chatgate.acompletion(
            model="anthropic/claude-x",
            messages=HI,
            api_key="sk-test",
            api_base=fake.base_url,
            temprature=0.5,  # type: ignore[call-arg]
        )
    assert caught.value.param == "temprature"
    assert "did you mean 'temperature'" in str(caught.value)
    assert "extra_body" in str(caught.value)
    assert fake.requests == []


def test_the_blocking_call_refuses_an_unknown_parameter_too() -> None:
    with pytest.raises(chatgate.InvalidRequestError, match="unknown parameter 'top_k'"):
        chatgate.completion(model="openai/gpt-4o-mini", messages=HI, api_key="k", top_k=3)  # type: ignore[call-arg]


def test_image_and_tool_messages_are_sent_verbatim(fake: FakeOpenAI) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "look", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "a cat"},
    ]
    tools = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]
    chatgate.completion(
        model="gpt-4o-mini",
        messages=messages,
        tools=tools,
        tool_choice="auto",
        api_key="k",
        api_base=fake.base_url,
    )
    sent = fake.last.body
    assert sent["messages"] == messages
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "auto"


def test_stream_sync_yields_chunks_and_final_with_usage(fake: FakeOpenAI) -> None:
    stream = chatgate.completion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "a b c"}],
        api_key="k",
        api_base=fake.base_url,
        stream=True,
    )
    chunks = list(stream)
    # include_usage was asked for upstream automatically, but the caller did not ask for it,
    # so every chunk they see has choices and usage still arrives in final().
    assert fake.last.body["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "echo: a b c"
    final = stream.final()
    assert final.content == "echo: a b c"
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert final.usage.completion_tokens == 4
    assert stream.ttft_ms is not None
    assert stream.ttft_ms > 0
    assert final.meta.ttft_ms == stream.ttft_ms


async def test_tool_call_fragments_are_reassembled_by_index(fake: FakeOpenAI) -> None:
    def call(index: int, id_: str, name: str) -> dict[str, object]:
        return {
            "index": index,
            "id": id_,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }

    def args(index: int, text: str) -> dict[str, object]:
        return {"index": index, "function": {"arguments": text}}

    fake.script(
        Reply(
            chunks=[
                chunk_json({"role": "assistant", "tool_calls": [call(0, "call_a", "weather")]}),
                chunk_json({"tool_calls": [args(0, '{"city":')]}),
                chunk_json({"tool_calls": [call(1, "call_b", "time")]}),
                chunk_json({"tool_calls": [args(1, '{"tz":"UTC"}')]}),
                chunk_json({"tool_calls": [args(0, '"Oslo"}')]}),
                chunk_json({}, finish_reason="tool_calls"),
            ]
        )
    )
    stream = await chatgate.acompletion(
        model="gpt-4o-mini", messages=HI, api_key="k", api_base=fake.base_url, stream=True
    )
    final = await stream.afinal()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "weather", '{"city":"Oslo"}'),
        ("call_b", "time", '{"tz":"UTC"}'),
    ]
    assert final.finish_reason == "tool_calls"


def test_truncated_answer_warns_and_can_raise(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(Reply(json=completion_json("cut", finish_reason="length")))
    with caplog.at_level(logging.WARNING, logger="chatgate"):
        response = call(fake)
    assert response.truncated
    assert "truncated" in caplog.text
    fake.script(Reply(json=completion_json("cut", finish_reason="length")))
    with pytest.raises(chatgate.TruncatedResponseError):
        call(fake, raise_on_truncation=True)


def test_truncated_stream_raises_at_end_when_asked(fake: FakeOpenAI) -> None:
    chunks = text_stream(["a"], usage=None)
    chunks[-1] = chunk_json({}, finish_reason="length")
    fake.script(Reply(chunks=chunks))
    stream = call(fake, stream=True, raise_on_truncation=True)
    with pytest.raises(chatgate.TruncatedResponseError):
        list(stream)


def test_slow_first_byte_hits_the_timeout(fake: FakeOpenAI) -> None:
    fake.script(Reply(json=completion_json("late"), delay_s=1.0))
    with pytest.raises(chatgate.APITimeoutError) as info:
        call(fake, timeout=0.2)
    assert info.value.retryable


def test_stream_idle_timeout(fake: FakeOpenAI) -> None:
    fake.script(Reply(chunks=text_stream(["a", "b"]), chunk_delay_s=0.6))
    stream = call(fake, stream=True, timeout=chatgate.Timeouts(connect=1, read=0.2, total=5))
    with pytest.raises(chatgate.APITimeoutError):
        list(stream)


def test_connection_refused_is_a_retryable_connection_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        with pytest.raises(chatgate.APIConnectionError) as info:
            chatgate.completion(
                model="gpt-4o-mini",
                messages=HI,
                api_key="k",
                api_base=f"http://127.0.0.1:{port}/v1",
            )
    assert info.value.retryable
    assert not isinstance(info.value, chatgate.APITimeoutError)
