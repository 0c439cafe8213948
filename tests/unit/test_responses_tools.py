"""What coding agents (Codex CLI) send to /v1/responses, with no network: namespace, custom
(freeform) and local_shell tools to function tools and their calls back to the caller's item
kinds; hosted tools dropped (or refused with strict_tools); metadata accepted and named; call
items and outputs replayed. Stream events are checked with the openai SDK's own types."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chatgate.errors import InvalidRequestError
from chatgate.responses_api import ChunksToResponseEvents
from chatgate.responses_api.request import echo_fields, translate
from chatgate.responses_api.response import response_object
from chatgate.types import ChatResponse
from tests.unit.responses_events import run_stream

FN = {"type": "function", "name": "exec_command", "parameters": {"type": "object"}}
NAMESPACE = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "sub-agents",
    "tools": [{"type": "function", "name": "close_agent", "parameters": {"type": "object"}}],
}
PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "edit files",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: 'x'"},
}
CODEX_LIKE = {
    "model": "m",
    "input": [{"type": "message", "role": "user",
               "content": [{"type": "input_text", "text": "hi"}]}],
    "tools": [FN, NAMESPACE, PATCH, {"type": "local_shell"},
              {"type": "web_search", "external_web_access": False}],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "019a-thread",
    "text": {"verbosity": "low"},
    "client_metadata": {"thread_id": "019a"},
}  # fmt: skip


def test_codex_tools_become_function_tools_and_hosted_ones_are_dropped() -> None:
    served = translate(CODEX_LIKE, "m")
    wire = served.request.wire()
    names = [t["function"]["name"] for t in wire["tools"]]
    assert names == ["exec_command", "multi_agent_v1__close_agent", "apply_patch", "local_shell"]
    patch = wire["tools"][2]["function"]
    assert patch["description"] == "edit files"
    assert patch["parameters"]["required"] == ["input"]
    assert "start: 'x'" in patch["parameters"]["properties"]["input"]["description"]
    assert served.tools.dropped == ["web_search"]
    assert served.seal_reasoning is True
    assert served.ignored == ["client_metadata"]
    assert wire["prompt_cache_key"] == "019a-thread"  # OpenAI itself: passed on
    assert wire["verbosity"] == "low"
    assert wire["reasoning_effort"] == "medium"
    assert "client_metadata" not in wire
    assert "include" not in wire


def test_other_backends_get_no_openai_metadata() -> None:
    body = {**CODEX_LIKE, "metadata": {"a": "b"}, "service_tier": "auto"}
    served = translate(body, "m", openai_upstream=False)
    wire = served.request.wire()
    for name in ("prompt_cache_key", "metadata", "service_tier", "verbosity"):
        assert name not in wire
    assert served.ignored == [
        "client_metadata",
        "metadata",
        "service_tier",
        "prompt_cache_key",
        "text.verbosity",
    ]


def test_strict_tools_refuse_a_hosted_tool_by_name() -> None:
    with pytest.raises(InvalidRequestError) as bad:
        translate(CODEX_LIKE, "m", strict_tools=True)
    assert bad.value.param == "tools[4].type"
    assert "'web_search'" in bad.value.message


def test_tool_choice_forms() -> None:
    def choice(value: Any) -> Any:
        return translate({**CODEX_LIKE, "tool_choice": value}, "m").request.wire()["tool_choice"]

    assert choice({"type": "custom", "name": "apply_patch"}) == {
        "type": "function",
        "function": {"name": "apply_patch"},
    }
    forced = choice({"type": "function", "name": "close_agent", "namespace": "multi_agent_v1"})
    assert forced["function"]["name"] == "multi_agent_v1__close_agent"
    allowed = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "local_shell"}]}
    served = translate({**CODEX_LIKE, "tool_choice": allowed}, "m").request.wire()
    assert served["tool_choice"] == "required"
    assert [t["function"]["name"] for t in served["tools"]] == ["local_shell"]
    only_hosted = {**CODEX_LIKE, "tools": [{"type": "web_search"}], "tool_choice": "auto"}
    assert "tools" not in translate(only_hosted, "m").request.wire()
    with pytest.raises(InvalidRequestError) as bad:
        translate({**only_hosted, "tool_choice": "required"}, "m")
    assert bad.value.param == "tool_choice"


def test_two_tools_with_one_flat_name_are_a_400() -> None:
    clash = {"type": "function", "name": "multi_agent_v1__close_agent"}
    with pytest.raises(InvalidRequestError) as bad:
        translate({**CODEX_LIKE, "tools": [clash, NAMESPACE]}, "m")
    assert bad.value.param == "tools[1].tools[0]"


def test_call_items_and_outputs_replay_as_one_assistant_turn() -> None:
    history = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
        {"type": "function_call", "call_id": "c1", "name": "close_agent",
         "namespace": "multi_agent_v1", "arguments": "{}"},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** x"},
        {"type": "local_shell_call", "call_id": "c3", "status": "completed",
         "action": {"type": "exec", "command": ["echo", "hi"], "working_directory": "/w"}},
        {"type": "function_call_output", "call_id": "c1", "output": "closed"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "patched"},
        {"type": "local_shell_call_output", "id": "c3", "output": "hi\n"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "message", "role": "user", "content": "thanks"},
    ]  # fmt: skip
    messages = translate({**CODEX_LIKE, "input": history}, "m").request.wire()["messages"]
    calls = messages[1]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == [
        "multi_agent_v1__close_agent",
        "apply_patch",
        "local_shell",
    ]
    assert orjson.loads(calls[1]["function"]["arguments"]) == {"input": "*** x"}
    assert orjson.loads(calls[2]["function"]["arguments"]) == {
        "command": ["echo", "hi"],
        "workdir": "/w",
    }
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in messages[2:5]] == [
        ("tool", "c1", "closed"),
        ("tool", "c2", "patched"),
        ("tool", "c3", "hi\n"),
    ]
    assert messages[5] == {"role": "user", "content": "thanks"}  # the web_search_call is gone


def test_images_in_a_tool_output_follow_as_a_user_message() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
    history = [
        {"type": "function_call", "call_id": "c1", "name": "view_image", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [image]},
    ]
    messages = translate({"input": history}, "m").request.wire()["messages"]
    assert messages[1]["role"] == "tool"
    assert messages[1]["content"] == [{"type": "text", "text": "(image attached below)"}]
    assert messages[2] == {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": image["image_url"]}}],
    }


def calls_answer() -> ChatResponse:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "multi_agent_v1__close_agent",
                                                      "arguments": '{"target": "a"}'}},
        {"id": "c2", "type": "function", "function": {"name": "apply_patch",
                                                      "arguments": '{"input": "*** Begin Patch"}'}},
        {"id": "c3", "type": "function", "function": {"name": "local_shell",
                                                      "arguments": '{"command": ["ls"]}'}},
    ]  # fmt: skip
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    choice = {"message": message, "finish_reason": "tool_calls"}
    return ChatResponse.model_validate({"id": "x", "model": "m", "choices": [choice]})


def test_calls_come_back_in_their_tools_kinds() -> None:
    served = translate(CODEX_LIKE, "m")
    out = response_object(
        calls_answer(), served.echo, response_id="resp_1", created_at=1, tools=served.tools
    )["output"]
    assert [(i["type"], i["call_id"]) for i in out] == [
        ("function_call", "c1"),
        ("custom_tool_call", "c2"),
        ("local_shell_call", "c3"),
    ]
    assert (out[0]["name"], out[0]["namespace"]) == ("close_agent", "multi_agent_v1")
    assert out[1]["name"] == "apply_patch"
    assert out[1]["input"] == "*** Begin Patch"
    assert out[2]["action"] == {"type": "exec", "command": ["ls"], "env": {}}


def test_streamed_calls_come_back_in_their_tools_kinds() -> None:
    served = translate(CODEX_LIKE, "m")
    events = ChunksToResponseEvents(echo_fields({}), model="m", tools=served.tools)
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c2", "type": "function",
             "function": {"name": "apply_patch", "arguments": '{"input": "*** '}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": 'Begin"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "c1", "type": "function",
             "function": {"name": "multi_agent_v1__close_agent", "arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]  # fmt: skip
    out = run_stream(events, chunks)
    kinds = [e["type"] for e in out]
    assert "response.function_call_arguments.delta" in kinds  # the namespaced function's
    custom_done = next(e for e in out if e["type"] == "response.custom_tool_call_input.done")
    assert custom_done["input"] == "*** Begin"
    done = [e["item"] for e in out if e["type"] == "response.output_item.done"]
    assert [(i["type"], i.get("name")) for i in done] == [
        ("custom_tool_call", "apply_patch"),
        ("function_call", "close_agent"),
    ]
    assert done[1]["namespace"] == "multi_agent_v1"
    final = out[-1]["response"]["output"]
    assert [i["type"] for i in final] == ["custom_tool_call", "function_call"]


@pytest.mark.parametrize(
    ("family", "effort", "limit", "sent"),
    [
        ("openai", "medium", None, {"reasoning_effort": "medium"}),
        ("gemini", "minimal", None, {"reasoning_effort": "low"}),
        ("gemini", "xhigh", None, {"reasoning_effort": "high"}),
        ("anthropic", "medium", None, {"thinking": {"type": "enabled", "budget_tokens": 8192}}),
        ("anthropic", "high", 4000, {"thinking": {"type": "enabled", "budget_tokens": 3999}}),
        ("anthropic", "low", 1000, {}),  # no room for Anthropic's smallest budget
        ("anthropic", "none", None, {}),
        ("bedrock", "high", None, {}),
    ],
)
def test_reasoning_effort_in_each_backends_form(
    family: str, effort: str, limit: int | None, sent: dict[str, Any]
) -> None:
    body = {"input": "x", "reasoning": {"effort": effort}, "max_output_tokens": limit}
    served = translate(body, "m", family=family, openai_upstream=family == "openai")
    wire = served.request.wire()
    got = {k: wire[k] for k in ("reasoning_effort", "thinking") if k in wire}
    assert got == sent
    assert ("reasoning.effort" in served.ignored) == (family == "bedrock")
