"""The official anthropic SDK against a real `chatgate serve`, served by an OpenAI-format
upstream: the gateway's /v1/messages translates both ways."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from tests.fakes.openai_server import FakeOpenAI, Reply, chunk_json, error_json
from tests.gateway_harness import deployment, gateway_config, serve

MASTER = "sk-master-anthropic-test-42"


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = gateway_config(
        deployment("claude-via-openai", upstream),
        master_key=MASTER,
        router={"timeout": 10, "cooldown_time": 0},  # a 30 s Retry-After: passed on
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw.url


@pytest.fixture
def client(gateway: str, upstream: FakeOpenAI) -> anthropic.Anthropic:
    upstream.replies.clear()
    return anthropic.Anthropic(base_url=gateway, api_key=MASTER, max_retries=0)


def test_messages_non_stream(client: anthropic.Anthropic, upstream: FakeOpenAI) -> None:
    message = client.messages.create(
        model="claude-via-openai",
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 3
    sent = upstream.last.body
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
    ]
    assert sent["max_tokens"] == 64
    assert sent["model"] == "gpt-4o-mini"


def test_messages_stream(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-via-openai", max_tokens=64, messages=[{"role": "user", "content": "a b c"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: a b c"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4


def test_messages_tool_use_stream(client: anthropic.Anthropic, upstream: FakeOpenAI) -> None:
    call = {
        "index": 0,
        "id": "call_x1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    upstream.script(
        Reply(
            chunks=[
                chunk_json({"role": "assistant", "tool_calls": [call]}),
                chunk_json({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
                chunk_json({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
                chunk_json({}, finish_reason="tool_calls"),
            ]
        )
    )
    tools = [
        {
            "name": "get_weather",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    with client.messages.stream(
        model="claude-via-openai",
        max_tokens=64,
        tools=tools,  # type: ignore[arg-type]  # plain dicts, as users write them
        messages=[{"role": "user", "content": "weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"
    assert upstream.last.body["tools"][0]["function"]["name"] == "get_weather"


def test_errors_in_anthropic_shape(
    gateway: str, client: anthropic.Anthropic, upstream: FakeOpenAI
) -> None:
    bad = anthropic.Anthropic(base_url=gateway, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        bad.messages.create(
            model="claude-via-openai", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(
            model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    upstream.script(
        Reply(status=429, json=error_json("slow", "rate"), headers={"retry-after": "30"})
    )
    with pytest.raises(anthropic.RateLimitError) as rate:
        client.messages.create(
            model="claude-via-openai", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert rate.value.response.headers["retry-after"] == "30"
