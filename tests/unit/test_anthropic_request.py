"""ChatRequest -> Anthropic Messages request, one test per row of the translation table."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chatgate.errors import InvalidRequestError, UnsupportedParamsError
from chatgate.providers.anthropic import ADAPTER
from chatgate.providers.anthropic.request import build_body, default_max_tokens
from chatgate.providers.base import Deployment
from chatgate.types import ChatRequest

DEP = Deployment("anthropic", "claude-sonnet-4-20250514", "https://api.anthropic.com", "sk-ant")
DROP = Deployment("anthropic", "claude-sonnet-4-20250514", "https://x", "k", drop_params=True)
HI = [{"role": "user", "content": "hi"}]


def body(messages: list[dict[str, Any]] | None = None, dep: Deployment = DEP, **kw: Any) -> Any:
    request = ChatRequest.model_validate({"model": "m", "messages": messages or HI, **kw})
    return build_body(request, dep)


def test_http_request_url_headers_and_minimal_body() -> None:
    request = ChatRequest.model_validate({"model": "m", "messages": HI, "max_tokens": 50})
    http = ADAPTER.build_request(request, DEP)
    assert http.url == "https://api.anthropic.com/v1/messages"
    assert http.headers["x-api-key"] == "sk-ant"
    assert http.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in http.headers
    assert orjson.loads(http.body) == {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_extra_headers_and_api_version_override() -> None:
    dep = Deployment(
        "anthropic", "m", "http://h", "k", headers={"anthropic-beta": "x"}, api_version="2099"
    )
    http = ADAPTER.build_request(ChatRequest.model_validate({"model": "m", "messages": HI}), dep)
    assert http.headers["anthropic-beta"] == "x"
    assert http.headers["anthropic-version"] == "2099"


def test_system_and_developer_messages_become_top_level_system_in_order() -> None:
    out = body(
        [
            {"role": "system", "content": "one"},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "two"}]},
        ]
    )
    assert out["system"] == "one\n\ntwo"
    assert out["messages"] == [{"role": "user", "content": "hi"}]


def test_system_cache_control_keeps_blocks() -> None:
    cached = {"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}
    out = body([{"role": "system", "content": "a"}, {"role": "system", "content": [cached]}, *HI])
    assert out["system"] == [{"type": "text", "text": "a"}, cached]


def test_consecutive_same_role_turns_are_merged() -> None:
    out = body([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_tool_calls_and_results_grouped_into_one_user_turn() -> None:
    calls = [
        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    out = body(
        [
            *HI,
            {"role": "assistant", "content": "calling", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "r1"},
            {
                "role": "tool",
                "tool_call_id": "toolu_2",
                "content": [{"type": "text", "text": "r2"}],
            },
            {"role": "user", "content": "and?"},
        ]
    )
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}},
                {"type": "tool_use", "id": "toolu_2", "name": "g", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r1"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "r2"}],
                },
                {"type": "text", "text": "and?"},
            ],
        },
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_bad_tool_arguments_name_the_message(arguments: str) -> None:
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(InvalidRequestError) as info:
        body([*HI, {"role": "assistant", "tool_calls": [call]}])
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_images_data_url_and_https_url() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "what?"},
    ]
    assert body([{"role": "user", "content": parts}])["messages"][0]["content"] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "what?"},
    ]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://x/y.png", InvalidRequestError),
        ("data:image/bmp;base64,AAAA", InvalidRequestError),
        ("data:image/png,AAAA", InvalidRequestError),
    ],
)
def test_bad_images_raise_naming_the_part(url: str, error: type[Exception]) -> None:
    parts = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(error, match=r"messages\[0\]\.content\[0\]"):
        body([{"role": "user", "content": parts}])


def test_image_detail_is_unsupported_unless_dropped() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}}]
    with pytest.raises(UnsupportedParamsError, match="detail"):
        body([{"role": "user", "content": parts}])
    out = body([{"role": "user", "content": parts}], dep=DROP)
    assert out["messages"][0]["content"][0]["source"]["url"] == "https://x/a.png"


def test_pdf_file_becomes_document_and_audio_is_rejected() -> None:
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}
    out = body([{"role": "user", "content": [pdf]}])
    assert out["messages"][0]["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(UnsupportedParamsError, match="audio"):
        body([{"role": "user", "content": [audio]}])


def test_cache_control_on_parts_and_tools_passes_through() -> None:
    part = {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}}
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object"}},
        "cache_control": {"type": "ephemeral"},
    }
    out = body([{"role": "user", "content": [part]}], tools=[tool])
    assert out["messages"][0]["content"] == [part]
    assert out["tools"][0]["cache_control"] == {"type": "ephemeral"}


def test_tools_and_tool_choice_variants() -> None:
    tool = {"type": "function", "function": {"name": "f", "description": "d"}}
    out = body(tools=[tool])
    assert out["tools"] == [
        {"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {}}}
    ]
    assert "tool_choice" not in out
    expected = {
        "auto": {"type": "auto"},
        "none": {"type": "none"},
        "required": {"type": "any"},
    }
    for given, sent in expected.items():
        assert body(tools=[tool], tool_choice=given)["tool_choice"] == sent
    named = {"type": "function", "function": {"name": "f"}}
    assert body(tools=[tool], tool_choice=named)["tool_choice"] == {"type": "tool", "name": "f"}
    assert body(tools=[tool], parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    with pytest.raises(InvalidRequestError):
        body(tools=[tool], tool_choice={"type": "function"})


def test_strict_tools_are_unsupported_unless_dropped() -> None:
    tool = {"type": "function", "function": {"name": "f", "strict": True}}
    with pytest.raises(UnsupportedParamsError, match="strict"):
        body(tools=[tool])
    assert body(tools=[tool], dep=DROP)["tools"][0]["name"] == "f"


def test_json_schema_becomes_a_forced_tool() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    out = body(response_format=fmt)
    assert out["tools"] == [
        {
            "name": "answer",
            "description": "Respond with a JSON object that matches this schema.",
            "input_schema": schema,
        }
    ]
    assert out["tool_choice"] == {"type": "tool", "name": "answer"}
    with pytest.raises(InvalidRequestError, match="forced tool"):
        body(response_format=fmt, tool_choice="auto")


def test_json_object_is_unsupported_unless_dropped() -> None:
    with pytest.raises(UnsupportedParamsError, match="response_format"):
        body(response_format={"type": "json_object"})
    assert "tools" not in body(response_format={"type": "json_object"}, dep=DROP)


def test_max_tokens_given_or_from_the_model_table() -> None:
    assert body(max_tokens=7)["max_tokens"] == 7
    assert body(max_completion_tokens=9, max_tokens=7)["max_tokens"] == 9
    assert body()["max_tokens"] == 64000
    assert default_max_tokens("claude-3-5-haiku-20241022") == 8192
    assert default_max_tokens("claude-opus-4-1-20250805") == 32000
    assert default_max_tokens("some-future-model") == 4096


def test_sampling_stop_user_and_vendor_fields() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    out = body(temperature=0.5, top_p=0.9, stop="END", user="u-1", top_k=5, thinking=thinking, n=1)
    assert out["temperature"] == 0.5
    assert out["top_p"] == 0.9
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-1"}
    assert out["top_k"] == 5
    assert out["thinking"] == thinking
    assert "n" not in out
    assert body(stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_temperature_above_one_is_rejected_not_clamped() -> None:
    with pytest.raises(InvalidRequestError) as info:
        body(temperature=1.5)
    assert info.value.param == "temperature"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seed", 1),
        ("n", 2),
        ("logprobs", True),
        ("logit_bias", {"1": 1.0}),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 0.5),
        ("metadata", {"k": "v"}),
        ("reasoning_effort", "low"),
    ],
)
def test_unsupported_params_raise_or_drop(name: str, value: Any) -> None:
    with pytest.raises(UnsupportedParamsError) as info:
        body(**{name: value})
    assert info.value.param == name
    assert name not in body(dep=DROP, **{name: value})


def test_message_names_are_unsupported_unless_dropped() -> None:
    with pytest.raises(UnsupportedParamsError, match=r"messages\[0\]\.name"):
        body([{"role": "user", "content": "hi", "name": "bob"}])
    assert body([{"role": "user", "content": "hi", "name": "bob"}], dep=DROP)["messages"] == HI


def test_thinking_blocks_are_sent_back_before_the_text() -> None:
    block = {"type": "thinking", "thinking": "hmm", "signature": "sig=="}
    assistant = {
        "role": "assistant",
        "content": "42",
        "reasoning_content": "hmm",
        "thinking_blocks": [block],
    }
    out = body([*HI, assistant, {"role": "user", "content": "why?"}])
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [block, {"type": "text", "text": "42"}],
    }


def test_stream_flag_and_stream_options() -> None:
    out = body(stream=True, stream_options={"include_usage": True})
    assert out["stream"] is True
    assert "stream_options" not in out
