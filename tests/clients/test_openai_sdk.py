"""The official openai Python SDK through a real `chatgate serve`, every endpoint of the SDK
the gateway serves, each against an OpenAI-format, an Anthropic and a Gemini backend (fake
upstreams speaking their own wire format): chat.completions create / stream / parse,
responses create / stream / parse, embeddings, models list / retrieve, with tools, and the
gateway's errors as the SDK's own exception classes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from pydantic import BaseModel

from tests.clients.backends import BACKENDS, model_list, upstreams
from tests.fakes import anthropic_server as anth
from tests.fakes import gemini_server as gem
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    chunk_json,
    completion_json,
    error_json,
    text_stream,
    usage_json,
)
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

__all__ = ["upstreams"]  # the fixture, used by name

MASTER = "sk-master-openai-sdk-7"
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
CHAT_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "weather", "parameters": WEATHER_PARAMS},
}
RESPONSES_TOOL: Any = {"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMS}
OSLO = {"city": "Oslo"}


class City(BaseModel):
    name: str


def text_reply(backend: str, text: str, *, stream: bool) -> Reply:
    """``text`` as the backend's own answer (streamed or whole)."""
    if backend == "openai":
        words = [text[: len(text) // 2], text[len(text) // 2 :]]
        return Reply(chunks=text_stream(words)) if stream else Reply(json=completion_json(text))
    if backend == "anthropic":
        message = anth.message_json(text, model="claude-sonnet-4-5")
        return Reply(chunks=anth.events_for(message)) if stream else Reply(json=message)
    answer = gem.response_json(gem.candidate_json({"text": text}), usage=gem.usage_json())
    return gem.stream_reply([answer]) if stream else Reply(json=answer)


def call_reply(backend: str, name: str, args: dict[str, Any], *, stream: bool) -> Reply:
    """A call of tool ``name`` as the backend's own answer."""
    arguments = orjson.dumps(args).decode()
    if backend == "openai":
        call = {"id": "call_1", "type": "function", "function": {"name": name}}
        if not stream:
            call["function"]["arguments"] = arguments
            body = completion_json(None, tool_calls=[call], finish_reason="tool_calls")
            return Reply(json=body)
        call["function"]["arguments"] = ""
        chunks = [
            chunk_json(
                {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]}
            ),
            chunk_json({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
            chunk_json({}, finish_reason="tool_calls"),
            chunk_json(usage=usage_json(9, 5), no_choices=True),
        ]
        return Reply(chunks=chunks)
    if backend == "anthropic":
        use = {"type": "tool_use", "id": "toolu_1", "name": name, "input": args}
        message = anth.message_json([use], model="claude-sonnet-4-5", stop_reason="tool_use")
        return Reply(chunks=anth.events_for(message)) if stream else Reply(json=message)
    part = {"functionCall": {"name": name, "args": args}}
    answer = gem.response_json(gem.candidate_json(part), usage=gem.usage_json())
    return gem.stream_reply([answer]) if stream else Reply(json=answer)


def json_reply(backend: str, value: dict[str, Any], schema_name: str, *, stream: bool) -> Reply:
    """A structured answer: JSON text, or for Anthropic the forced tool chatgate asks for."""
    if backend == "anthropic":
        return call_reply(backend, schema_name, value, stream=stream)
    return text_reply(backend, orjson.dumps(value).decode(), stream=stream)


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, FakeOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    embed = deployment("embed", upstreams["openai"], "openai/text-embedding-3-small")
    config = gateway_config(
        *model_list(upstreams),
        embed,
        master_key=MASTER,
        router={"num_retries": 0, "timeout": 10, "cooldown_time": 0},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway, upstreams: dict[str, FakeOpenAI]) -> Iterator[openai.OpenAI]:
    for fake in upstreams.values():
        fake.replies.clear()
    with gateway.openai_client() as sdk:
        yield sdk


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- chat.completions ------------------------------------------------------------------------


def test_chat_create_text_and_tools(
    client: openai.OpenAI, upstreams: dict[str, FakeOpenAI], backend: str
) -> None:
    upstreams[backend].script(text_reply(backend, "Hello there", stream=False))
    answer = client.chat.completions.create(
        model=backend, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "Hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    upstreams[backend].script(call_reply(backend, "get_weather", OSLO, stream=False))
    called = client.chat.completions.create(
        model=backend, messages=[{"role": "user", "content": "weather?"}], tools=[CHAT_TOOL]
    )
    assert called.choices[0].finish_reason == "tool_calls"
    [call] = called.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == OSLO


def test_chat_create_stream_with_tools(
    client: openai.OpenAI, upstreams: dict[str, FakeOpenAI], backend: str
) -> None:
    upstreams[backend].script(call_reply(backend, "get_weather", OSLO, stream=True))
    chunks = list(
        client.chat.completions.create(
            model=backend,
            messages=[{"role": "user", "content": "weather?"}],
            tools=[CHAT_TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls or ()
        if call.function is not None
    )
    assert orjson.loads(arguments) == OSLO
    finishes = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage is not None


def test_chat_stream_helper(
    client: openai.OpenAI, upstreams: dict[str, FakeOpenAI], backend: str
) -> None:
    upstreams[backend].script(text_reply(backend, "streamed words", stream=True))
    with client.chat.completions.stream(
        model=backend, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "streamed words"
    assert final.choices[0].message.content == "streamed words"


def test_chat_parse(client: openai.OpenAI, upstreams: dict[str, FakeOpenAI], backend: str) -> None:
    upstreams[backend].script(json_reply(backend, {"name": "Oslo"}, "City", stream=False))
    parsed = client.chat.completions.parse(
        model=backend, messages=[{"role": "user", "content": "a city"}], response_format=City
    )
    assert parsed.choices[0].message.parsed == City(name="Oslo")


def test_chat_parse_with_a_strict_function_tool(
    client: openai.OpenAI, upstreams: dict[str, FakeOpenAI]
) -> None:
    upstreams["openai"].script(call_reply("openai", "City", {"name": "Oslo"}, stream=False))
    parsed = client.chat.completions.parse(
        model="openai",
        messages=[{"role": "user", "content": "a city"}],
        tools=[openai.pydantic_function_tool(City)],
    )
    [call] = parsed.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == City(name="Oslo")
    assert upstreams["openai"].last.body["tools"][0]["function"]["strict"] is True


# -- responses -------------------------------------------------------------------------------


def test_responses_create_text_and_tools(
    client: openai.OpenAI, upstreams: dict[str, FakeOpenAI], backend: str
) -> None:
    upstreams[backend].script(text_reply(backend, "Hello there", stream=False))
    answer = client.responses.create(model=backend, input="hi", instructions="be brief")
    assert answer.output_text == "Hello there"
    assert answer.status == "completed"
    upstreams[backend].script(call_reply(backend, "get_weather", OSLO, stream=False))
    called = client.responses.create(model=backend, input="weather?", tools=[RESPONSES_TOOL])
    [item] = called.output
    assert item.type == "function_call"
    assert item.name == "get_weather"
    assert orjson.loads(item.arguments) == OSLO


def test_responses_create_stream_with_tools(
    client: openai.OpenAI, upstreams: dict[str, FakeOpenAI], backend: str
) -> None:
    upstreams[backend].script(call_reply(backend, "get_weather", OSLO, stream=True))
    events = list(
        client.responses.create(
            model=backend, input="weather?", tools=[RESPONSES_TOOL], stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert orjson.loads(done.arguments) == OSLO


def test_responses_stream_helper(
    client: openai.OpenAI, upstreams: dict[str, FakeOpenAI], backend: str
) -> None:
    upstreams[backend].script(text_reply(backend, "streamed words", stream=True))
    with client.responses.stream(model=backend, input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "streamed words"
    assert final.output_text == "streamed words"


def test_responses_parse(
    client: openai.OpenAI, upstreams: dict[str, FakeOpenAI], backend: str
) -> None:
    upstreams[backend].script(json_reply(backend, {"name": "Oslo"}, "City", stream=False))
    parsed = client.responses.parse(model=backend, input="a city", text_format=City)
    assert parsed.output_parsed == City(name="Oslo")


# -- embeddings and models -------------------------------------------------------------------


def test_embeddings_floats_and_the_sdks_default_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="embed", input=["one", "two"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    default = client.embeddings.create(model="embed", input=["one", "two"])  # base64 on the wire
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding)
    assert default.usage.total_tokens > 0


def test_models_list(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} >= {*BACKENDS, "embed"}


def test_models_retrieve(client: openai.OpenAI) -> None:
    model = client.models.retrieve("anthropic")
    assert model.id == "anthropic"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


# -- errors as the SDK's classes -------------------------------------------------------------


def test_errors_are_the_sdks_exception_classes(
    gateway: Gateway, client: openai.OpenAI, upstreams: dict[str, FakeOpenAI]
) -> None:
    user = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=user)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="openai", messages=user, temperature=9)  # type: ignore[arg-type]
    assert bad.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as stored:
        client.responses.create(model="openai", input="hi", previous_response_id="resp_1")
    assert stored.value.param == "previous_response_id"
    with gateway.openai_client("sk-wrong") as other:
        with pytest.raises(openai.AuthenticationError):
            other.chat.completions.create(model="openai", messages=user)  # type: ignore[arg-type]
        with pytest.raises(openai.AuthenticationError):
            other.embeddings.create(model="embed", input="x")
    limited = error_json("slow down", "rate_limit_exceeded")
    upstreams["openai"].script(Reply(status=429, json=limited, headers={"retry-after": "1"}))
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="openai", input="hi")
    upstreams["openai"].script(Reply(status=500, json=error_json("boom", "server_error")))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="openai", messages=user)  # type: ignore[arg-type]
