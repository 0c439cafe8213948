"""ChatRequest -> Converse body, one test per row of the translation table, and SigV4 signing
at a pinned time; pure, no network."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import orjson
import pytest
from botocore.credentials import ReadOnlyCredentials

from chatgate.errors import InvalidRequestError, UnsupportedParamsError
from chatgate.providers.base import Deployment
from chatgate.providers.bedrock import BedrockAdapter
from chatgate.providers.bedrock.request import converse_body
from chatgate.types import ChatRequest

NOW = datetime.datetime(2024, 11, 20, 12, 0, 0, tzinfo=datetime.UTC)
CREDS = ReadOnlyCredentials("AKIDEXAMPLE", "secret", None)
DEP = Deployment(
    provider="bedrock",
    model="anthropic.claude-3-5-sonnet-20240620-v1:0",
    api_base="https://bedrock-runtime.us-east-1.amazonaws.com",
    options={"region": "us-east-1", "credentials": CREDS},
)
ADAPTER = BedrockAdapter(clock=lambda: NOW)


def body(messages: list[dict[str, Any]], dep: Deployment = DEP, **params: Any) -> dict[str, Any]:
    return converse_body(ChatRequest(model=dep.model, messages=messages, **params), dep)


USER = [{"role": "user", "content": "hi"}]


def test_system_and_developer_become_system_blocks() -> None:
    out = body(
        [
            {"role": "system", "content": "a"},
            {"role": "developer", "content": [{"type": "text", "text": "b"}]},
            *USER,
        ]
    )
    assert out == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "system": [{"text": "a"}, {"text": "b"}],
    }


def test_inference_config_and_metadata() -> None:
    out = body(
        USER,
        max_completion_tokens=10,
        temperature=0.5,
        top_p=0.9,
        stop=["x", "y"],
        metadata={"team": "a"},
    )
    assert out["inferenceConfig"] == {
        "maxTokens": 10,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["x", "y"],
    }
    assert out["requestMetadata"] == {"team": "a"}


def test_consecutive_same_role_turns_merge_and_tool_results_group() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    call2 = {**call, "id": "t2"}
    out = body(
        [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "", "tool_calls": [call, call2]},
            {"role": "tool", "tool_call_id": "t1", "content": "r1"},
            {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "r2"}]},
            {"role": "user", "content": "and?"},
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}},
                {"toolUse": {"toolUseId": "t2", "name": "f", "input": {"a": 1}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "r1"}]}},
                {"toolResult": {"toolUseId": "t2", "content": [{"text": "r2"}]}},
                {"text": "and?"},
            ],
        },
    ]
    spec = out["toolConfig"]["tools"][0]["toolSpec"]
    assert spec == {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "f"}}, {"tool": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert body(USER, tools=tools, tool_choice=choice)["toolConfig"]["toolChoice"] == expected


def test_tool_choice_none_omits_tools_or_is_named_when_history_has_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert "toolConfig" not in body(USER, tools=tools, tool_choice="none")
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history = [
        *USER,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "t1", "content": "r"},
    ]
    with pytest.raises(UnsupportedParamsError, match="tool_choice"):
        body(history, tools=tools, tool_choice="none")
    dropped = body(
        history, dataclasses.replace(DEP, drop_params=True), tools=tools, tool_choice="none"
    )
    assert dropped["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "f",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
        ]
    }


def test_json_object_is_a_forced_tool_and_conflicts_with_tools() -> None:
    out = body(USER, response_format={"type": "json_object"})
    assert out["toolConfig"] == {
        "tools": [
            {"toolSpec": {"name": "json_response", "inputSchema": {"json": {"type": "object"}}}}
        ],
        "toolChoice": {"tool": {"name": "json_response"}},
    }
    with pytest.raises(InvalidRequestError, match="one or the other"):
        body(
            USER,
            response_format={"type": "json_object"},
            tools=[{"type": "function", "function": {"name": "f"}}],
        )


@pytest.mark.parametrize(
    "params",
    [
        {"seed": 1},
        {"logprobs": True},
        {"presence_penalty": 1},
        {"frequency_penalty": 1},
        {"logit_bias": {"1": 1}},
        {"user": "u"},
        {"reasoning_effort": "low"},
        {"parallel_tool_calls": False},
        {"n": 2},
    ],
)
def test_unsupported_params_raise(params: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedParamsError) as info:
        body(USER, **params)
    assert info.value.param == next(iter(params))


def test_extras_go_to_model_fields_or_converse_fields() -> None:
    out = body(
        USER,
        top_k=3,
        thinking={"type": "enabled", "budget_tokens": 1024},
        guardrailConfig={"guardrailIdentifier": "g", "guardrailVersion": "1"},
        additionalModelRequestFields={"x": 1},
    )
    assert out["additionalModelRequestFields"] == {
        "top_k": 3,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "x": 1,
    }
    assert out["guardrailConfig"] == {"guardrailIdentifier": "g", "guardrailVersion": "1"}


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("https://x/cat.png", "download it"),
        ("data:image/bmp;base64,AAAA", "png, jpeg, gif or webp"),
        ("data:image/png;base64,@@@", "invalid base64"),
    ],
)
def test_bad_images_are_named(url: str, match: str) -> None:
    parts = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(InvalidRequestError, match=match) as info:
        body([{"role": "user", "content": parts}])
    assert info.value.param == "messages.0.content.0"


def test_bad_tool_arguments_and_empty_messages_are_named() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(InvalidRequestError) as info:
        body([*USER, {"role": "assistant", "tool_calls": [call]}])
    assert info.value.param == "messages.1.tool_calls.0.function.arguments"
    with pytest.raises(InvalidRequestError, match="empty"):
        body([{"role": "user", "content": ""}])


def test_signed_request_at_pinned_time() -> None:
    request = ChatRequest(model=DEP.model, messages=USER, stream=True)
    http = ADAPTER.build_request(request, DEP)
    assert http.url == (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
        "anthropic.claude-3-5-sonnet-20240620-v1:0/converse-stream"
    )
    assert orjson.loads(http.body) == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    assert http.headers["X-Amz-Date"] == "20241120T120000Z"
    auth = http.headers["Authorization"]
    assert auth.startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20241120/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date, Signature="
    )
    assert http == ADAPTER.build_request(request, DEP)  # same time, same signature
    token = dataclasses.replace(
        DEP, options={"region": "us-east-1", "credentials": ReadOnlyCredentials("A", "s", "tok")}
    )
    assert ADAPTER.build_request(request, token).headers["X-Amz-Security-Token"] == "tok"


def test_arn_slashes_are_encoded_in_the_path() -> None:
    arn = "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-v1:0"
    http = ADAPTER.build_request(
        ChatRequest(model=arn, messages=USER), dataclasses.replace(DEP, model=arn)
    )
    assert http.url.endswith(
        "/model/arn:aws:bedrock:us-east-1:123:inference-profile%2Fus.anthropic.claude-v1:0/converse"
    )


def test_unprepared_deployment_is_a_named_error() -> None:
    with pytest.raises(InvalidRequestError, match="prepare"):
        ADAPTER.build_request(
            ChatRequest(model="m", messages=USER), dataclasses.replace(DEP, options={})
        )
