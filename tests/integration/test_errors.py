"""Errors: the right class per status and body, the right retry hints, raised before any
network call when the input is wrong, and never carrying a key."""

from __future__ import annotations

import pytest

import chatgate
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json

HI = [{"role": "user", "content": "hi"}]


def call(fake: FakeOpenAI, **kw: object) -> object:
    return chatgate.completion(
        model="gpt-4o-mini", messages=HI, api_key="sk-test-secret-123", api_base=fake.base_url, **kw
    )


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (408, chatgate.APIStatusError, True),
        (409, chatgate.ConflictError, True),
        (422, chatgate.UnprocessableEntityError, False),
        (529, chatgate.InternalServerError, True),
    ],
)  # the statuses every provider shares: tests/conformance/test_errors.py
@pytest.mark.parametrize("stream", [False, True])
def test_status_maps_to_class_with_fields(
    fake: FakeOpenAI, status: int, cls: type[chatgate.APIStatusError], retryable: bool, stream: bool
) -> None:
    fake.script(Reply(status=status, json=error_json("it broke", "some_error", code="x")))
    with pytest.raises(cls) as info:
        call(fake, stream=stream)
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.retryable is retryable
    assert err.provider == "openai"
    assert err.model == "gpt-4o-mini"
    assert err.request_id == "req_fake_1"
    assert err.body == error_json("it broke", "some_error", code="x")
    assert "it broke" in str(err)


def test_rate_limit_reads_openai_reset_headers(fake: FakeOpenAI) -> None:
    fake.script(
        Reply(
            status=429,
            json=error_json("slow down", "tokens"),
            headers={"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "1m6s"},
        )
    )
    with pytest.raises(chatgate.RateLimitError) as info:
        call(fake)
    assert info.value.retry_after == 66.0  # the later of the two resets


def test_x_should_retry_header_overrides(fake: FakeOpenAI) -> None:
    fake.script(
        Reply(
            status=500, json=error_json("bad", "server_error"), headers={"x-should-retry": "false"}
        )
    )
    with pytest.raises(chatgate.InternalServerError) as info:
        call(fake)
    assert info.value.retryable is False


def test_context_window_error_recognized_by_code(fake: FakeOpenAI) -> None:
    body = error_json(
        "This model's maximum context length is 8192 tokens",
        "invalid_request_error",
        code="context_length_exceeded",
        param="messages",
    )
    fake.script(Reply(status=400, json=body))
    with pytest.raises(chatgate.ContextWindowExceededError) as info:
        call(fake)
    assert isinstance(info.value, chatgate.BadRequestError)
    assert not info.value.retryable


def test_content_policy_error_recognized_by_code(fake: FakeOpenAI) -> None:
    body = error_json("flagged", "invalid_request_error", code="content_policy_violation")
    fake.script(Reply(status=400, json=body))
    with pytest.raises(chatgate.ContentPolicyViolationError):
        call(fake)


def test_non_json_and_fastapi_error_bodies(fake: FakeOpenAI) -> None:
    fake.script(
        Reply(status=502, raw=b"<html>Bad Gateway</html>"),
        Reply(status=400, json={"detail": "max_tokens too large"}),
    )
    with pytest.raises(chatgate.InternalServerError, match="Bad Gateway"):
        call(fake)
    with pytest.raises(chatgate.BadRequestError, match="max_tokens too large"):
        call(fake)


def test_echoed_key_is_scrubbed_from_errors(fake: FakeOpenAI) -> None:
    fake.script(Reply(status=401, json=error_json("bad key sk-test-secret-123", "auth")))
    with pytest.raises(chatgate.AuthenticationError) as info:
        call(fake)
    assert "sk-test-secret-123" not in str(info.value)
    assert "sk-test-secret-123" not in repr(info.value.args)


def test_missing_key_names_env_var_before_any_request(fake: FakeOpenAI) -> None:
    with pytest.raises(chatgate.MissingAPIKeyError, match="OPENAI_API_KEY"):
        chatgate.completion(model="gpt-4o-mini", messages=HI, api_base=fake.base_url)
    with pytest.raises(chatgate.MissingAPIKeyError, match="GROQ_API_KEY"):
        chatgate.completion(model="groq/llama-3.1-8b-instant", messages=HI)
    assert fake.requests == []


def test_key_from_env(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    chatgate.completion(model="gpt-4o-mini", messages=HI)
    assert fake.last.headers["Authorization"] == "Bearer sk-from-env"


def test_local_servers_need_no_key_but_need_a_base(fake: FakeOpenAI) -> None:
    out = chatgate.completion(model="vllm/my-model", messages=HI, api_base=fake.base_url)
    assert out.content == "echo: hi"
    assert "Authorization" not in fake.last.headers
    assert fake.last.body["model"] == "my-model"
    with pytest.raises(chatgate.InvalidRequestError, match="api_base") as info:
        chatgate.completion(model="llamacpp/m", messages=HI)
    assert info.value.param == "api_base"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool.tool_call_id"),
    ],
)
def test_bad_input_names_the_field_and_sends_nothing(
    fake: FakeOpenAI, kwargs: dict[str, object], param: str
) -> None:
    args: dict[str, object] = {"messages": HI, **kwargs}
    with pytest.raises(chatgate.InvalidRequestError) as info:
        chatgate.completion(model="gpt-4o-mini", api_key="k", api_base=fake.base_url, **args)
    assert info.value.param == param
    assert param.split(".")[0] in str(info.value)
    assert fake.requests == []


def test_unknown_provider_prefix_is_explained() -> None:
    with pytest.raises(chatgate.InvalidRequestError, match="openai/meta-llama/Llama-3"):
        chatgate.completion(model="meta-llama/Llama-3", messages=HI)


def test_unsupported_param_raises_or_is_dropped(fake: FakeOpenAI) -> None:
    with pytest.raises(chatgate.UnsupportedParamsError, match="drop_params=True") as info:
        chatgate.completion(
            model="groq/llama", messages=HI, api_key="k", api_base=fake.base_url, logprobs=True
        )
    assert info.value.param == "logprobs"
    assert fake.requests == []
    chatgate.completion(
        model="groq/llama",
        messages=HI,
        api_key="k",
        api_base=fake.base_url,
        logprobs=True,
        drop_params=True,
        temperature=0.5,
    )
    assert "logprobs" not in fake.last.body
    assert fake.last.body["temperature"] == 0.5
