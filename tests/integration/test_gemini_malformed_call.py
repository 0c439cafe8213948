"""Gemini's finishReason MALFORMED_FUNCTION_CALL / UNEXPECTED_TOOL_CALL: the model's tool
call was unusable and the answer is empty. That must raise (streamed or not, and through the
gateway as a 502), never look like a finished answer with nothing to say."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from google import genai
from google.genai import types as genai_types
from google.oauth2.credentials import Credentials

import chatgate
from chatgate.config import parse
from chatgate.server.app import create_app
from tests.asgi_client import Lifespan
from tests.fakes.gemini_server import (
    FakeGemini,
    Reply,
    candidate_json,
    response_json,
    stream_reply,
    usage_json,
)
from tests.gateway_harness import deployment, gateway_config
from tests.integration.test_gateway_inprocess import post
from tests.integration.test_gemini import WEATHER

MODEL = "gemini/gemini-2.5-flash"
HI = [{"role": "user", "content": "weather in Oslo?"}]
DETAIL = "Malformed function call: print(default_api.weather(city='Oslo'))"


def malformed(reason: str = "MALFORMED_FUNCTION_CALL", detail: str | None = DETAIL) -> Any:
    """A candidate as Gemini sends it: empty content, the reason and (usually) why."""
    candidate: dict[str, Any] = {"content": {}, "finishReason": reason, "index": 0}
    if detail is not None:
        candidate["finishMessage"] = detail
    return response_json(candidate, usage=usage_json(40, 0))


def stream_of(final: Any) -> Reply:
    thought = candidate_json({"text": "I'll look it up", "thought": True}, finish_reason=None)
    return stream_reply([response_json(thought, usage=usage_json(40, 5)), final])


@pytest.fixture
def gem() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


async def ask(fake: FakeGemini, **kw: Any) -> Any:
    return await chatgate.acompletion(
        MODEL, HI, tools=[WEATHER], api_key="gk-test", api_base=fake.base_url, **kw
    )


async def test_non_stream_raises_naming_the_cause(gem: FakeGemini) -> None:
    gem.script(Reply(json=malformed()))
    with pytest.raises(chatgate.MalformedToolCallError) as info:
        await ask(gem)
    error = info.value
    assert error.finish_reason == "MALFORMED_FUNCTION_CALL"
    assert error.finish_message == DETAIL
    assert "MALFORMED_FUNCTION_CALL" in str(error)
    assert DETAIL in str(error)
    assert error.usage is not None
    assert error.usage.prompt_tokens == 40  # billed, and kept
    assert (error.provider, error.model) == ("gemini", "gemini-2.5-flash")
    assert error.retryable is False
    assert isinstance(error, chatgate.APIError)


async def test_stream_raises_after_what_came_before(gem: FakeGemini) -> None:
    gem.script(stream_of(malformed("UNEXPECTED_TOOL_CALL", detail=None)))
    stream = await ask(gem, stream=True)
    seen: list[str] = []
    with pytest.raises(chatgate.MalformedToolCallError) as info:
        async for chunk in stream:
            seen += [c.delta.reasoning_content or "" for c in chunk.choices]
    assert "".join(seen) == "I'll look it up"
    assert info.value.finish_reason == "UNEXPECTED_TOOL_CALL"
    assert info.value.finish_message is None
    assert info.value.usage is not None
    assert info.value.usage.prompt_tokens == 40


def sdk_clients(gem: FakeGemini) -> list[genai.Client]:
    """The SDK on the Gemini API and on Vertex AI (whose converter keeps finishMessage)."""
    return [
        genai.Client(
            api_key="gk-test",
            http_options=genai_types.HttpOptions(base_url=gem.root_url, api_version="v1beta"),
        ),
        genai.Client(
            vertexai=True,
            project="p",
            location="us-central1",
            credentials=Credentials(token="ya29.test-token"),
            http_options=genai_types.HttpOptions(base_url=gem.root_url),
        ),
    ]


def test_sdk_parses_the_fakes_malformed_answer(gem: FakeGemini) -> None:
    gem.script(*[r for _ in range(2) for r in (Reply(json=malformed()), stream_of(malformed()))])
    for client in sdk_clients(gem):
        with client:
            out = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
            chunks = list(
                client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
            )
        assert chunks[0].candidates is not None
        assert chunks[0].candidates[0].finish_reason is None
        for candidates in (out.candidates, chunks[-1].candidates):
            assert candidates is not None
            assert candidates[0].finish_reason == genai_types.FinishReason.MALFORMED_FUNCTION_CALL
            assert candidates[0].content is not None
            assert not candidates[0].content.parts
            if client.vertexai:
                assert candidates[0].finish_message == DETAIL
    assert "/projects/p/locations/us-central1/" in gem.last.path


@pytest.mark.parametrize("provider", ["gemini", "vertex_ai"])
def test_both_gemini_providers_raise(gem: FakeGemini, provider: str) -> None:
    gem.script(Reply(json=malformed()))
    base = gem.base_url if provider == "gemini" else f"{gem.root_url}/v1/projects/p/locations/l"
    with pytest.raises(chatgate.MalformedToolCallError, match="print\\(default_api"):
        chatgate.completion(
            f"{provider}/gemini-2.5-flash", HI, tools=[WEATHER], api_key="k", api_base=base
        )


async def test_gateway_answers_502_with_the_code(gem: FakeGemini) -> None:
    gem.script(Reply(json=malformed()), stream_of(malformed()))
    config = parse(gateway_config(deployment("g", gem, MODEL)))
    app = create_app(config)
    body = {"model": "g", "messages": HI, "tools": [WEATHER]}
    async with Lifespan(app):
        status, raw = await post(app, "/v1/chat/completions", body)
        assert status == 502
        error = orjson.loads(raw)["error"]
        assert error["code"] == "malformed_tool_call"
        assert DETAIL in error["message"]
        status, raw = await post(app, "/v1/chat/completions", {**body, "stream": True})
    assert status == 200  # the stream had begun: the error is its last event
    events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert orjson.loads(events[-1])["error"]["code"] == "malformed_tool_call"
