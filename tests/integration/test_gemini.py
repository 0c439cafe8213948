"""chatgate against the fake Gemini upstream over real sockets, and the fake checked against
the official google-genai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

import chatgate
from chatgate.providers.gemini.schema import ChatgateSchemaWarning
from chatgate.types import ChatResponse
from tests.fakes.gemini_server import (
    FakeGemini,
    Reply,
    candidate_json,
    error_json,
    response_json,
    usage_json,
)

MODEL = "gemini/gemini-2.5-flash"
HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def gem() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def call(fake: FakeGemini, messages: list[Any] = HI, **kw: Any) -> Any:
    return chatgate.completion(
        model=MODEL, messages=messages, api_key="gk-test", api_base=fake.base_url, **kw
    )


def test_non_stream_exact_request_and_response(gem: FakeGemini) -> None:
    response = call(
        gem,
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is up"}],
        temperature=0.2,
        max_tokens=50,
    )
    assert isinstance(response, ChatResponse)
    assert response.content == "echo: what is up"
    assert response.finish_reason == "stop"
    assert response.id == "resp-fake-1"
    assert response.meta.provider == "gemini"
    assert response.meta.model == "gemini-2.5-flash"
    assert response.usage is not None
    assert response.usage.completion_tokens == 4
    sent = gem.last
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "gk-test"
    assert "Authorization" not in sent.headers
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "what is up"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 50},
    }


def test_key_and_base_from_env(gem: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "from-env")
    monkeypatch.setenv("GEMINI_API_BASE", gem.base_url)
    assert chatgate.completion(model=MODEL, messages=HI).content == "echo: hi"
    assert gem.last.headers["x-goog-api-key"] == "from-env"


def _calls_reply(*calls: tuple[str, dict[str, Any]], response_id: str) -> Reply:
    parts = [{"functionCall": {"name": n, "args": a}} for n, a in calls]
    return Reply(
        json=response_json(candidate_json(*parts), usage=usage_json(), response_id=response_id)
    )


def test_three_round_tool_conversation(gem: FakeGemini) -> None:
    gem.script(
        _calls_reply(
            ("weather", {"city": "Oslo"}), ("weather", {"city": "Rome"}), response_id="r1"
        ),
        _calls_reply(("weather", {"city": "Paris"}), response_id="r2"),
        Reply(json=response_json(candidate_json({"text": "Rome is warmest."}), usage=usage_json())),
    )
    messages: list[Any] = [{"role": "user", "content": "Which is warmest: Oslo, Rome, Paris?"}]
    temps = {"Oslo": 3, "Rome": 18, "Paris": 11}
    for _ in range(2):
        response = call(gem, messages, tools=[WEATHER], tool_choice="auto")
        assert response.finish_reason == "tool_calls"
        calls = response.choices[0].message.tool_calls
        assert calls is not None
        messages.append(response.choices[0].message.model_dump(exclude_none=True))
        for c in calls:
            city = chatgate_json(c.function.arguments)["city"]
            messages.append({"role": "tool", "tool_call_id": c.id, "content": str(temps[city])})
    final = call(gem, messages, tools=[WEATHER], tool_choice="auto")
    assert final.content == "Rome is warmest."
    declaration = {
        "name": "weather",
        "description": "current weather",
        "parameters": {
            "type": "OBJECT",
            "properties": {"city": {"type": "STRING"}},
            "required": ["city"],
        },
    }
    assert gem.last.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Which is warmest: Oslo, Rome, Paris?"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
                    {"functionCall": {"name": "weather", "args": {"city": "Rome"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "weather", "response": {"result": "3"}}},
                    {"functionResponse": {"name": "weather", "response": {"result": "18"}}},
                ],
            },
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "weather", "response": {"result": "11"}}}],
            },
        ],
        "tools": [{"functionDeclarations": [declaration]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }
    ids = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert ids == ["call_r1_0", "call_r1_1", "call_r2_0"]


def chatgate_json(text: str) -> dict[str, Any]:
    import orjson

    parsed: dict[str, Any] = orjson.loads(text)
    return parsed


def test_image_url_is_refused_before_any_request(gem: FakeGemini) -> None:
    # data URLs, sent inline: tests/conformance/test_answers.py
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
    ]
    with pytest.raises(chatgate.InvalidRequestError, match=r"messages\[0\]\.content\[1\]"):
        call(gem, [{"role": "user", "content": content}])
    assert gem.requests == []  # refused before any network call


def test_json_schema_response_format(gem: FakeGemini) -> None:
    gem.script(Reply(json=response_json(candidate_json({"text": '{"city": "Oslo"}'}))))
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": schema, "strict": True},
    }
    with pytest.warns(ChatgateSchemaWarning, match="additionalProperties"):
        response = call(gem, response_format=fmt)
    assert response.content == '{"city": "Oslo"}'
    assert gem.last.body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {"city": {"type": "STRING"}},
            "required": ["city"],
        },
    }


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
KEY = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
TOO_LONG = "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."


@pytest.mark.parametrize(
    ("status", "name", "message", "details", "cls", "retryable", "retry_after"),
    [
        (
            400,
            "INVALID_ARGUMENT",
            "API key not valid.",
            [KEY],
            chatgate.AuthenticationError,
            False,
            None,
        ),
        (400, "INVALID_ARGUMENT", TOO_LONG, None, chatgate.ContextWindowExceededError, False, None),
        (400, "FAILED_PRECONDITION", "location", None, chatgate.BadRequestError, False, None),
        (504, "DEADLINE_EXCEEDED", "slow", None, chatgate.InternalServerError, True, None),
    ],
)  # the statuses every provider shares: tests/conformance/test_errors.py
@pytest.mark.parametrize("stream", [False, True])
def test_errors_map_to_classes(
    gem: FakeGemini,
    status: int,
    name: str,
    message: str,
    details: list[dict[str, Any]] | None,
    cls: type[chatgate.APIStatusError],
    retryable: bool,
    retry_after: float | None,
    stream: bool,
) -> None:
    gem.script(Reply(status=status, json=error_json(status, name, message, details)))
    with pytest.raises(cls) as info:
        call(gem, stream=stream)
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.retryable is retryable
    assert err.retry_after == retry_after
    assert err.provider == "gemini"
    assert err.model == "gemini-2.5-flash"
    assert message in str(err)


def test_blocked_prompt_is_a_content_policy_violation(gem: FakeGemini) -> None:
    gem.script(Reply(json={"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "m"}))
    with pytest.raises(chatgate.ContentPolicyViolationError, match="SAFETY"):
        call(gem)


# --- the fake against the official SDK ----------------------------------------------------------


@pytest.fixture
def sdk(gem: FakeGemini) -> Iterator[genai.Client]:
    options = genai_types.HttpOptions(base_url=gem.root_url, api_version="v1beta")
    with genai.Client(api_key="gk-test", http_options=options) as client:
        yield client


def test_sdk_parses_non_stream_answer_with_thoughts_and_calls(
    gem: FakeGemini, sdk: genai.Client
) -> None:
    parts: list[dict[str, Any]] = [
        {"text": "hmm", "thought": True},
        {"text": "ok"},
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
    ]
    gem.script(
        Reply(
            json=response_json(candidate_json(*parts), usage=usage_json(7, 2, thoughtsTokenCount=3))
        )
    )
    out = sdk.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert gem.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert out.function_calls is not None
    assert out.function_calls[0].args == {"city": "Oslo"}
    assert out.candidates is not None
    assert out.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert out.usage_metadata is not None
    assert out.usage_metadata.thoughts_token_count == 3
    assert out.usage_metadata.total_token_count == 12
    assert out.response_id == "resp-fake-1"
    assert out.model_version == "gemini-2.5-flash"


def test_sdk_parses_echo_stream(gem: FakeGemini, sdk: genai.Client) -> None:
    chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="x y"))
    assert gem.last.path.endswith(":streamGenerateContent?alt=sse")
    assert "".join(c.text or "" for c in chunks) == "echo: x y"
    last = chunks[-1].candidates
    assert last is not None
    assert last[0].finish_reason == genai_types.FinishReason.STOP


@pytest.mark.parametrize(
    ("status", "name", "error_class"),
    [
        (400, "INVALID_ARGUMENT", genai_errors.ClientError),
        (429, "RESOURCE_EXHAUSTED", genai_errors.ClientError),
        (503, "UNAVAILABLE", genai_errors.ServerError),
    ],
)
def test_sdk_reads_fake_errors(
    gem: FakeGemini, sdk: genai.Client, status: int, name: str, error_class: type
) -> None:
    gem.script(Reply(status=status, json=error_json(status, name, "nope", [RETRY])))
    with pytest.raises(genai_errors.APIError) as info:
        sdk.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert type(info.value) is error_class
    assert info.value.code == status
    assert info.value.status == name
    assert info.value.message == "nope"
