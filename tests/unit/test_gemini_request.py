"""ChatRequest -> Gemini request: one test per row of the translation table."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chatgate.errors import InvalidRequestError, UnsupportedParamsError
from chatgate.providers.base import Deployment
from chatgate.providers.gemini import ADAPTER
from chatgate.providers.gemini.schema import ChatgateSchemaWarning
from chatgate.types import ChatRequest

DEP = Deployment("gemini", "gemini-2.5-flash", "https://g.example/v1beta", api_key="key-1")
HI = [{"role": "user", "content": "hi"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}


def body(deployment: Deployment = DEP, **params: Any) -> dict[str, Any]:
    params.setdefault("messages", HI)
    request = ChatRequest.model_validate({"model": deployment.model, **params})
    out: dict[str, Any] = orjson.loads(ADAPTER.build_request(request, deployment).body)
    return out


def test_url_headers_and_minimal_body() -> None:
    request = ChatRequest.model_validate({"model": "gemini-2.5-flash", "messages": HI})
    http = ADAPTER.build_request(request, DEP)
    assert http.method == "POST"
    assert http.url == "https://g.example/v1beta/models/gemini-2.5-flash:generateContent"
    assert http.headers == {"Content-Type": "application/json", "x-goog-api-key": "key-1"}
    assert orjson.loads(http.body) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    streamed = ADAPTER.build_request(request.model_copy(update={"stream": True}), DEP)
    assert streamed.url.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_system_and_developer_join_in_order_and_roles_merge() -> None:
    out = body(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "a"},
            {"role": "developer", "content": [{"type": "text", "text": "no emoji"}]},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    )
    assert out["systemInstruction"] == {"parts": [{"text": "be brief\n\nno emoji"}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
    ]


def test_tool_calls_and_results_round_trip_with_names_recovered() -> None:
    second = {**CALL, "id": "call_2", "function": {"name": "put", "arguments": "{}"}}
    out = body(
        messages=[
            *HI,
            {"role": "assistant", "content": None, "tool_calls": [CALL, second]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 20}'},
            {"role": "tool", "tool_call_id": "call_2", "content": "done"},
        ]
    )
    assert out["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get", "args": {"a": 1}}},
                {"functionCall": {"name": "put", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get", "response": {"temp": 20}}},
                {"functionResponse": {"name": "put", "response": {"result": "done"}}},
            ],
        },
    ]


def test_thought_signature_travels_back_from_extra_content() -> None:
    call = {**CALL, "extra_content": {"google": {"thought_signature": "c2ln"}}}
    out = body(messages=[*HI, {"role": "assistant", "tool_calls": [call]}])
    assert out["contents"][1]["parts"][0]["thoughtSignature"] == "c2ln"


def test_unknown_tool_call_id_and_bad_arguments_raise_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError) as info:
        body(messages=[*HI, {"role": "tool", "tool_call_id": "nope", "content": "x"}])
    assert info.value.param == "messages[1].tool_call_id"
    bad = {**CALL, "function": {"name": "get", "arguments": "[1]"}}
    with pytest.raises(InvalidRequestError) as info:
        body(messages=[*HI, {"role": "assistant", "tool_calls": [bad]}])
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_images_audio_and_files() -> None:
    content = [
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/cat.jpg"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg=="}},
    ]
    out = body(messages=[{"role": "user", "content": content}])
    assert out["contents"][0]["parts"] == [
        {"text": "what"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "gs://bucket/cat.jpg", "mimeType": "image/jpeg"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERg=="}},
    ]


def test_https_image_url_raises_with_place_and_fix() -> None:
    content = [
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    with pytest.raises(InvalidRequestError, match="base64 data URL") as info:
        body(messages=[{"role": "user", "content": content}])
    assert info.value.param == "messages[0].content[1]"


def test_generation_config_fields() -> None:
    out = body(
        temperature=1.5,
        top_p=0.9,
        max_completion_tokens=100,
        stop="END",
        n=2,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        logprobs=True,
        top_logprobs=3,
        top_k=40,
    )
    assert out["generationConfig"] == {
        "temperature": 1.5,
        "topP": 0.9,
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "responseLogprobs": True,
        "logprobs": 3,
        "maxOutputTokens": 100,
        "stopSequences": ["END"],
        "topK": 40,
    }
    assert body(max_tokens=5)["generationConfig"] == {"maxOutputTokens": 5}


def test_reasoning_effort_becomes_a_thinking_budget() -> None:
    config = body(reasoning_effort="low")["generationConfig"]
    assert config == {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    with pytest.raises(InvalidRequestError, match="reasoning_effort"):
        body(reasoning_effort="extreme")


def test_tools_and_tool_choice() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get",
                "description": "fetch",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        },
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}},
    ]
    out = body(tools=tools, tool_choice="required")
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get",
                    "description": "fetch",
                    "parameters": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}},
                },
                {"name": "ping"},
            ]
        }
    ]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body(tool_choice="auto")["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert body(tool_choice="none")["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    named = body(tool_choice={"type": "function", "function": {"name": "get"}})
    assert named["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get"]}
    }
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        body(tool_choice={"type": "function"})


def test_dropped_schema_keywords_and_strict_warn_once_per_request() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get",
                "strict": True,
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
        }
    ]
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "string", "default": "q"}},
    }
    with pytest.warns(ChatgateSchemaWarning) as record:
        body(tools=tools, response_format=fmt)
    assert len(record) == 1
    text = str(record[0].message)
    assert "tools[0].function.parameters: additionalProperties" in text
    assert "tools[0].function: strict" in text
    assert "response_format.json_schema.schema: default" in text


def test_response_format() -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "x",
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
    }
    assert body(response_format=fmt)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
    }
    assert body(response_format={"type": "json_object"})["generationConfig"] == {
        "responseMimeType": "application/json"
    }
    assert "generationConfig" not in body(response_format={"type": "text"})


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("logit_bias", {"50256": -100}),
        ("user", "u1"),
        ("metadata", {"k": "v"}),
        ("parallel_tool_calls", False),
        ("vendor_flag", 1),
    ],
)
def test_unsupported_params_raise_or_drop(param: str, value: Any) -> None:
    with pytest.raises(UnsupportedParamsError) as info:
        body(**{param: value})
    assert info.value.param == param
    dropping = Deployment("gemini", "m", "https://g.example/v1beta", api_key="k", drop_params=True)
    assert body(dropping, **{param: value}) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
    }


def test_top_logprobs_without_logprobs_and_system_only_raise() -> None:
    with pytest.raises(InvalidRequestError, match="top_logprobs"):
        body(top_logprobs=2)
    with pytest.raises(InvalidRequestError, match="at least one user"):
        body(messages=[{"role": "system", "content": "x"}])
