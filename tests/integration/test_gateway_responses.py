"""The official openai SDK's Responses API (`client.responses`) against a real `chatgate serve`,
served by the OpenAI-format fake and by the Anthropic fake: /v1/responses translates both ways,
and keys, limits, budgets, cost and the spend log work as for /v1/chat/completions."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from chatgate.cost.budgets import to_pico
from tests.fakes import anthropic_server as anth
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    chunk_json,
    completion_json,
    text_stream,
    usage_json,
)
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve
from tests.integration.test_gateway_anthropic_cache import spend_row

MASTER = "sk-master-responses-test-9"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "the weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def claude() -> Iterator[anth.FakeAnthropic]:
    with anth.FakeAnthropic() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAI,
    claude: anth.FakeAnthropic,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("fast", upstream),
        deployment("sonnet", claude, "anthropic/claude-sonnet-4-5"),
        master_key=MASTER,
        database=SQLITE,
        router={"timeout": 10, "cooldown_time": 0},
        key_cache_ttl_s=0,
        budgets=[{"scope": "team", "subject": "capped", "limit": "0.000002"}],
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway, upstream: FakeOpenAI) -> Iterator[openai.OpenAI]:
    upstream.replies.clear()
    with gateway.openai_client() as sdk:
        yield sdk


def test_string_input(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    response = client.responses.create(model="fast", input="hello there")
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == "echo: hello there"
    message = response.output[0]
    assert message.type == "message"
    assert message.content[0].type == "output_text"
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    assert response.usage.total_tokens == response.usage.input_tokens + 3
    assert upstream.last.body["messages"] == [{"role": "user", "content": "hello there"}]


def test_item_list_with_instructions_and_options(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    response = client.responses.create(
        model="fast",
        instructions="be brief",
        input=[
            {"role": "developer", "content": "answer in English"},
            {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
            {"role": "assistant", "content": "ok"},
            {"type": "message", "role": "user", "content": "second"},
        ],
        max_output_tokens=50,
        temperature=0.5,
        metadata={"run": "7"},
        reasoning={"effort": "low"},
    )
    assert response.output_text == "echo: second"
    assert response.instructions == "be brief"
    assert response.temperature == 0.5
    assert response.max_output_tokens == 50
    sent = upstream.last.body
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": "answer in English"},
        {"role": "user", "content": [{"type": "text", "text": "first"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    assert sent["max_completion_tokens"] == 50
    assert sent["reasoning_effort"] == "low"
    assert sent["metadata"] == {"run": "7"}


def test_function_calling_round_trip(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    call = {"id": "call_w1", "type": "function", "function": {"name": "get_weather"}}
    call["function"]["arguments"] = '{"city": "Oslo"}'
    upstream.script(
        Reply(json=completion_json(None, tool_calls=[call], finish_reason="tool_calls")),
        Reply(json=completion_json("It is sunny in Oslo.")),
    )
    ask: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    first = client.responses.create(model="fast", input=ask, tools=[WEATHER])  # type: ignore[list-item]
    [item] = first.output
    assert item.type == "function_call"
    assert (item.name, item.call_id, item.arguments) == (
        "get_weather",
        "call_w1",
        call["function"]["arguments"],
    )
    sent_tool = upstream.last.body["tools"][0]
    assert sent_tool["function"]["name"] == "get_weather"
    assert sent_tool["function"]["strict"] is True
    ask += first.output  # the SDK pattern: hand the output items back
    ask.append({"type": "function_call_output", "call_id": item.call_id, "output": "sunny"})
    second = client.responses.create(model="fast", input=ask, tools=[WEATHER])  # type: ignore[list-item]
    assert second.output_text == "It is sunny in Oslo."
    messages = upstream.last.body["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"][0]["id"] == "call_w1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"}


def test_text_format_json_schema(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    class City(BaseModel):
        name: str

    upstream.script(Reply(json=completion_json('{"name": "Oslo"}')))
    parsed = client.responses.parse(model="fast", input="a city", text_format=City)
    assert parsed.output_parsed == City(name="Oslo")
    fmt = upstream.last.body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "City"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"] == {
        "name": {"title": "Name", "type": "string"}
    }


def test_max_output_tokens_is_incomplete(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(Reply(json=completion_json("cut sh", finish_reason="length")))
    response = client.responses.create(model="fast", input="long", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "cut sh"


def test_stream_events(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(Reply(chunks=text_stream(["Hel", "lo"], usage=(9, 2))))
    stream = client.responses.create(model="fast", input="hi", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == "Hello"
    assert done.response.usage is not None
    assert done.response.usage.input_tokens == 9
    assert upstream.last.body["stream_options"] == {"include_usage": True}


def test_stream_helper_with_a_function_call(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    call = {"index": 0, "id": "call_s1", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": ""}
    upstream.script(
        Reply(
            chunks=[
                chunk_json({"role": "assistant", "content": "Let me check."}),
                chunk_json({"tool_calls": [call]}),
                chunk_json({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
                chunk_json({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
                chunk_json({}, finish_reason="tool_calls"),
                chunk_json(usage=usage_json(12, 7), no_choices=True),
            ]
        )
    )
    with client.responses.stream(model="fast", input="weather?", tools=[WEATHER]) as stream:  # type: ignore[list-item]
        kinds = {event.type for event in stream}
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    assert final.output_text == "Let me check."
    call_item = final.output[1]
    assert call_item.type == "function_call"
    assert call_item.arguments == '{"city":"Oslo"}'
    assert call_item.call_id == "call_s1"


def test_mid_stream_failure_is_response_failed(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(Reply(chunks=text_stream(["a ", "b ", "c"]), drop_after=2))
    events = list(client.responses.create(model="fast", input="hi", stream=True))
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed"
    assert last.response.error is not None
    assert last.response.error.code == "server_error"


def test_anthropic_upstream_behind_responses(
    client: openai.OpenAI, claude: anth.FakeAnthropic
) -> None:
    response = client.responses.create(model="sonnet", instructions="terse", input="from claude")
    assert response.output_text == "echo: from claude"
    assert claude.last.body["system"] == "terse" or claude.last.body["system"][0]["text"] == "terse"
    thinking = {"type": "thinking", "thinking": "ponder", "signature": "sig"}
    message = anth.message_json(
        [thinking, {"type": "text", "text": "Done."}], model="claude-sonnet-4-5"
    )
    claude.script(Reply(chunks=anth.events_for(message)))
    with client.responses.stream(model="sonnet", input="think") as stream:
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "message"]
    reasoning = final.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.content is not None
    assert reasoning.content[0].text == "ponder"
    assert final.output_text == "Done."


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
    ],
)
def test_unsupported_params_are_a_400_naming_them(
    client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="fast", input="x", extra_body=extra)
    assert bad.value.param == param
    assert param.split("[")[0] in bad.value.message


def test_auth_limit_and_budget_errors_are_sdk_exceptions(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    url = f"{gateway.url}/v1"
    limited = gateway.new_key(rpm=1)
    capped = gateway.new_key(team="capped")
    with (
        openai.OpenAI(base_url=url, api_key="wrong", max_retries=0) as bad,
        openai.OpenAI(base_url=url, api_key=limited, max_retries=0) as rpm_one,
        openai.OpenAI(base_url=url, api_key=capped, max_retries=0) as broke,
    ):
        with pytest.raises(openai.AuthenticationError):
            bad.responses.create(model="fast", input="x")
        rpm_one.responses.create(model="fast", input="x")
        with pytest.raises(openai.RateLimitError) as limit:
            rpm_one.responses.create(model="fast", input="x")
        assert limit.value.code == "rate_limit_exceeded"
        with pytest.raises(openai.APIStatusError) as budget:
            broke.responses.create(model="fast", input="x")
        assert budget.value.status_code == 402
        assert budget.value.code == "budget_exceeded"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="x")


@pytest.mark.parametrize("stream", [False, True])
def test_cost_header_and_spend_row(
    client: openai.OpenAI, upstream: FakeOpenAI, database: Path, stream: bool
) -> None:
    if stream:
        upstream.script(Reply(chunks=text_stream(["priced"], usage=(1000, 100))))
    else:
        upstream.script(
            Reply(json=completion_json("priced", prompt_tokens=1000, completion_tokens=100))
        )
    raw = client.responses.with_raw_response.create(model="fast", input="x", stream=stream)
    expected = Decimal("0.00000015") * 1000 + Decimal("0.0000006") * 100
    if stream:
        with raw.parse() as events:
            assert list(events)[-1].type == "response.completed"
    else:
        assert Decimal(raw.headers["x-chatgate-cost"]) == expected
    row = spend_row(database, raw.headers["x-chatgate-request-id"])
    assert row["cost_pico"] == to_pico(expected)
    assert row["stream"] == stream
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1000, 100)
