"""The official anthropic Python SDK, unchanged but for base_url, through a real `chatgate
serve` against every endpoint of it the gateway serves: messages create / stream / parse /
count_tokens, models list / retrieve, and its error classes — each with an OpenAI-format
backend (``gpt``) and an Anthropic backend (``claude``)."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from pydantic import BaseModel

from tests.fakes.anthropic_server import Reply as AnthropicReply
from tests.fakes.anthropic_server import message_json
from tests.fakes.openai_server import Reply, completion_json
from tests.integration.messages_support import MASTER, Backends, fresh_gateway, module_gateway

backends = pytest.fixture(scope="module")(module_gateway)
fresh = pytest.fixture(fresh_gateway)

BACKENDS = ["gpt", "claude"]
HI: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hello there"}]


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def sdk(fresh: Backends) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=fresh.url, api_key=MASTER, max_retries=0)
    yield client
    client.close()


@pytest.mark.parametrize("model", BACKENDS)
def test_create(sdk: anthropic.Anthropic, model: str) -> None:
    message = sdk.messages.create(model=model, max_tokens=64, system="brief", messages=HI)
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("model", BACKENDS)
def test_stream(sdk: anthropic.Anthropic, model: str) -> None:
    with sdk.messages.stream(model=model, max_tokens=64, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: hello there"
    assert final.id.startswith("msg_")
    assert final.stop_reason == "end_turn"


def test_tool_use_ids_are_toolu(sdk: anthropic.Anthropic, fresh: Backends) -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    fresh.openai.script(
        Reply(json=completion_json(None, tool_calls=[call], finish_reason="tool_calls"))
    )
    tools: list[anthropic.types.ToolParam] = [{"name": "f", "input_schema": {"type": "object"}}]
    message = sdk.messages.create(model="gpt", max_tokens=64, messages=HI, tools=tools)
    block = message.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.input) == ("toolu_call_9", {"a": 1})
    assert message.stop_reason == "tool_use"


def test_parse_with_an_openai_format_backend(sdk: anthropic.Anthropic, fresh: Backends) -> None:
    fresh.openai.script(Reply(json=completion_json('{"name": "Ada", "age": 36}')))
    parsed = sdk.messages.parse(model="gpt", max_tokens=64, messages=HI, output_format=Person)
    assert parsed.parsed_output == Person(name="Ada", age=36)
    sent = fresh.openai.last.body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["required"] == ["name", "age"]


def test_parse_with_an_anthropic_backend(sdk: anthropic.Anthropic, fresh: Backends) -> None:
    fresh.anthropic.script(AnthropicReply(json=message_json('{"name": "Bo", "age": 7}')))
    parsed = sdk.messages.parse(model="claude", max_tokens=64, messages=HI, output_format=Person)
    assert parsed.parsed_output == Person(name="Bo", age=7)
    assert fresh.anthropic.last.body["output_config"]["format"]["type"] == "json_schema"


def test_count_tokens(sdk: anthropic.Anthropic, fresh: Backends) -> None:
    assert sdk.messages.count_tokens(model="claude", messages=HI).input_tokens > 0
    exact = sdk.messages.with_raw_response.count_tokens(model="claude", messages=HI)
    assert exact.headers["x-chatgate-token-count"] == "exact"
    assert exact.parse().input_tokens > 0
    assert fresh.anthropic.last.path == "/v1/messages/count_tokens"
    local = sdk.messages.with_raw_response.count_tokens(model="gpt", messages=HI)
    assert local.parse().input_tokens > 0
    assert local.headers["x-chatgate-token-count-method"] == "tiktoken:o200k_base"


def test_models_list_and_retrieve(sdk: anthropic.Anthropic) -> None:
    names = [m.id for m in sdk.models.list(limit=2)]  # pages through has_more / last_id
    assert names == ["gpt", "reasoner", "claude", "gem", "claude-or-gpt", "bedrock"]
    model = sdk.models.retrieve("gem")
    assert (model.id, model.type, model.display_name) == ("gem", "model", "gem")


def test_errors_are_the_sdks_error_classes(sdk: anthropic.Anthropic, fresh: Backends) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk.messages.create(model="nope", max_tokens=8, messages=HI)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        sdk.models.retrieve("nope")
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.messages.create(model="gpt", max_tokens=0, messages=HI)
    assert "max_tokens" in str(bad.value)
    with pytest.raises(anthropic.AuthenticationError):
        sdk.with_options(api_key="wrong").messages.create(model="gpt", max_tokens=8, messages=HI)
    key = fresh.new_key(models=["claude"])
    scoped = sdk.with_options(api_key=key)
    with pytest.raises(anthropic.PermissionDeniedError):
        scoped.messages.create(model="gpt", max_tokens=8, messages=HI)
    assert [m.id for m in scoped.models.list()] == ["claude"]
