"""/v1/messages with what current Anthropic clients send, through a real `chatgate serve`, to
each kind of backend: system turns inside ``messages``, ``thinking``, ``output_config``,
``context_management``, structured output, and Anthropic ids on the way back."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fakes.bedrock_server import Reply as BedrockReply
from tests.fakes.bedrock_server import converse_json
from tests.fakes.openai_server import Reply, chunk_json, completion_json
from tests.integration.messages_support import Backends, fresh_gateway, module_gateway

backends = pytest.fixture(scope="module")(module_gateway)
fresh = pytest.fixture(fresh_gateway)

CLAUDE_CODE_FIELDS: dict[str, Any] = {
    "thinking": {"type": "adaptive", "display": "omitted"},
    "output_config": {"effort": "high"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
}
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def body(model: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 100,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "env: linux"}]},
            {"role": "user", "content": "say pong"},
        ],
        **fields,
    }


def test_system_turns_fold_into_the_system_prompt(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages", body("gpt"))
    assert resp.status_code == 200, resp.text
    sent = fresh.openai.last.body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "user"]
    assert [p["text"] for p in sent[0]["content"]] == ["be brief", "env: linux"]
    resp = fresh.post("/v1/messages", body("claude"))
    assert resp.status_code == 200, resp.text
    native = fresh.anthropic.last.body
    assert [b["text"] for b in native["system"]] == ["be brief", "env: linux"]
    assert [m["role"] for m in native["messages"]] == ["user"]  # consecutive turns merged
    assert "say pong" in orjson.dumps(native["messages"]).decode()


def test_claude_code_fields_are_dropped_for_a_model_without_reasoning(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages", body("gpt", **CLAUDE_CODE_FIELDS))
    assert resp.status_code == 200, resp.text
    sent = fresh.openai.last.body
    for name in (*CLAUDE_CODE_FIELDS, "reasoning_effort"):
        assert name not in sent


def test_effort_becomes_reasoning_effort_where_the_model_reasons(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages", body("reasoner", **CLAUDE_CODE_FIELDS))
    assert resp.status_code == 200, resp.text
    sent = fresh.openai.last.body
    assert sent["reasoning_effort"] == "high"
    assert not {"thinking", "output_config", "context_management"} & set(sent)
    budget = {"thinking": {"type": "enabled", "budget_tokens": 2000}}
    assert fresh.post("/v1/messages", body("gem", **budget)).status_code == 200
    config = fresh.gemini.last.body["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}


def test_an_anthropic_backend_gets_the_fields_and_betas_as_sent(fresh: Backends) -> None:
    beta = "context-management-2025-06-27,effort-2025-11-24"
    resp = fresh.post(
        "/v1/messages", body("claude", **CLAUDE_CODE_FIELDS), headers={"anthropic-beta": beta}
    )
    assert resp.status_code == 200, resp.text
    received = fresh.anthropic.last
    for name, value in CLAUDE_CODE_FIELDS.items():
        assert received.body[name] == value
    assert received.headers["anthropic-beta"] == beta
    assert "reasoning_effort" not in received.body


def test_a_fallback_to_another_format_means_translation(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages", body("claude-or-gpt", **CLAUDE_CODE_FIELDS))
    assert resp.status_code == 200, resp.text
    sent = fresh.anthropic.last.body
    assert not set(CLAUDE_CODE_FIELDS) & set(sent)


def test_structured_output_becomes_each_backends_schema_mode(fresh: Backends) -> None:
    fresh.openai.script(Reply(json=completion_json('{"name": "Ada", "age": 36}')))
    fmt = {"format": {"type": "json_schema", "schema": SCHEMA}}
    resp = fresh.post("/v1/messages", body("gpt", output_config=fmt))
    assert resp.status_code == 200, resp.text
    assert orjson.loads(resp.json()["content"][0]["text"]) == {"name": "Ada", "age": 36}
    sent = fresh.openai.last.body["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}
    legacy = {"type": "json_schema", "schema": SCHEMA}
    assert fresh.post("/v1/messages", body("gem", output_format=legacy)).status_code == 200
    config = fresh.gemini.last.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["required"] == ["name", "age"]
    assert fresh.post("/v1/messages", body("claude", output_config=fmt)).status_code == 200
    assert fresh.anthropic.last.body["output_config"] == fmt


def test_structured_output_reaches_bedrock_as_a_forced_tool(fresh: Backends) -> None:
    tool_use = {"toolUse": {"toolUseId": "t1", "name": "output", "input": {"name": "Cy", "age": 9}}}
    fresh.bedrock.script(BedrockReply(json=converse_json([tool_use], stop_reason="tool_use")))
    fmt = {"format": {"type": "json_schema", "schema": SCHEMA}}
    resp = fresh.post("/v1/messages", body("bedrock", output_config=fmt))
    assert resp.status_code == 200, resp.text
    message = resp.json()
    assert message["content"] == [{"type": "text", "text": '{"name":"Cy","age":9}'}]
    assert message["stop_reason"] == "end_turn"
    config = fresh.bedrock.last.body["toolConfig"]
    assert config["tools"][0]["toolSpec"]["name"] == "output"
    assert config["tools"][0]["toolSpec"]["inputSchema"]["json"] == SCHEMA
    assert config["toolChoice"] == {"tool": {"name": "output"}}


def test_ids_are_anthropic_ids_whole_and_streamed(fresh: Backends) -> None:
    call = {"id": "call_abc", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    fresh.openai.script(
        Reply(json=completion_json(None, tool_calls=[call], finish_reason="tool_calls"))
    )
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    message = fresh.post("/v1/messages", body("gpt", tools=tools)).json()
    assert message["id"].startswith("msg_")
    assert message["content"][0]["id"] == "toolu_call_abc"
    chunks = [
        chunk_json({"role": "assistant", "tool_calls": [{"index": 0, **call}]}),
        chunk_json({}, finish_reason="tool_calls"),
    ]
    fresh.openai.script(Reply(chunks=chunks))
    streamed = fresh.post("/v1/messages", body("gpt", tools=tools, stream=True)).text
    events = [orjson.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data:")]
    assert events[0]["message"]["id"].startswith("msg_")
    assert events[1]["content_block"]["id"] == "toolu_call_abc"
    assert events[-1] == {"type": "message_stop"}


def test_server_tools_are_dropped_for_another_backend(fresh: Backends) -> None:
    tools = [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 1},
        {"name": "f", "input_schema": {"type": "object"}},
    ]
    assert fresh.post("/v1/messages", body("gpt", tools=tools)).status_code == 200
    assert [t["function"]["name"] for t in fresh.openai.last.body["tools"]] == ["f"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": "x"}, "messages"),
        ({"system": 5}, "system"),
        ({"system": [1, None]}, "system[0]"),
        ({"metadata": "x"}, "metadata"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
        ({"messages": [{"role": "system", "content": "only"}]}, "messages"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(
    fresh: Backends, fields: dict[str, Any], param: str
) -> None:
    resp = fresh.post("/v1/messages", {**body("gpt"), **fields})
    assert resp.status_code == 400, resp.text
    error = resp.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"{param}:"), error
    assert fresh.openai.requests == []


def test_images_in_a_tool_result_follow_it_as_user_content(fresh: Backends) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
    }
    turns = [
        {"role": "user", "content": "read it"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_r", "name": "Read", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_r", "content": [image]}],
        },
    ]
    resp = fresh.post("/v1/messages", {"model": "gpt", "max_tokens": 50, "messages": turns})
    assert resp.status_code == 200, resp.text
    sent = fresh.openai.last.body["messages"]
    assert sent[-2] == {
        "role": "tool",
        "tool_call_id": "toolu_r",
        "content": "(the result is attached below)",
    }
    assert sent[-1]["role"] == "user"
    assert sent[-1]["content"][0]["text"] == "(attached by the result of tool call toolu_r)"
    assert sent[-1]["content"][1]["image_url"]["url"] == "data:image/png;base64,AA=="


def test_earlier_thinking_goes_to_anthropic_only(fresh: Backends) -> None:
    thinking = {"type": "thinking", "thinking": "let me see", "signature": "c2ln"}
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [thinking, {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "again"},
    ]
    for model in ("gpt", "claude"):
        resp = fresh.post("/v1/messages", {"model": model, "max_tokens": 50, "messages": turns})
        assert resp.status_code == 200, resp.text
    assert fresh.openai.last.body["messages"][1] == {"role": "assistant", "content": "hello"}
    assert fresh.anthropic.last.body["messages"][1]["content"][0] == thinking
