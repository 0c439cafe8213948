"""Tool calls (whole and streamed, one round trip) and JSON answers through response_format:
the same calls and content from every provider, whatever its wire form."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conformance.conftest import Ask
from tests.conformance.providers import Fake, Provider

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_tool_call_round_trip(provider: Provider, upstream: Fake, ask: Ask) -> None:
    upstream.script(
        provider.tool_calls([("call_A", "weather", {"city": "Oslo"})], stream=False),
        provider.text("Oslo is 5C.", 30, 4),
    )
    messages: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    first = ask(messages, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [
        ("call_A", "weather", {"city": "Oslo"})
    ]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "5C"})
    second = ask(messages, tools=[WEATHER])
    assert second.content == "Oslo is 5C."
    assert second.finish_reason == "stop"
    expected = provider.tool_result_as_sent("call_A", "weather", "5C")
    assert provider.sent_tool_results(upstream.last.body) == [expected]


async def test_streamed_tool_calls_reassemble(
    provider: Provider, upstream: Fake, aask: Ask
) -> None:
    calls = [("call_B", "weather", {"city": "Bergen"}), ("call_C", "weather", {"city": "Rome"})]
    upstream.script(provider.tool_calls(calls, stream=True))
    stream = await aask(tools=[WEATHER], stream=True)
    final = await stream.afinal()
    got = final.choices[0].message.tool_calls
    assert got is not None
    assert [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in got] == calls
    assert final.finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_json_schema_answer_comes_back_as_content(
    provider: Provider, upstream: Fake, ask: Ask, stream: bool
) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    upstream.script(provider.structured({"name": "Ada"}, "person", stream=stream))
    out = ask(response_format=fmt, stream=stream)
    response = out.final() if stream else out
    assert orjson.loads(response.content or "") == {"name": "Ada"}
    assert response.finish_reason == "stop"
    assert response.choices[0].message.tool_calls is None
    assert provider.sent_json_request(upstream.last.body) == provider.json_request(fmt)
