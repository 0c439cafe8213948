"""Azure OpenAI: URL, api-version, auth headers, content-filter errors; pure, no network."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from chatgate.errors import (
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InvalidRequestError,
    MissingAPIKeyError,
    RateLimitError,
)
from chatgate.providers.azure import ADAPTER, prepare
from chatgate.providers.base import Deployment
from chatgate.providers.registry import resolve_deployment
from chatgate.types import ChatRequest

BASE = "https://my-res.openai.azure.com"
REQ = ChatRequest(model="gpt4o-prod", messages=[{"role": "user", "content": "hi"}])


def deployment(**kw: object) -> Deployment:
    env = {"AZURE_API_KEY": "az-key", "AZURE_API_BASE": BASE + "/"}
    d = resolve_deployment("azure/gpt4o-prod", env=env)
    return dataclasses.replace(d, **kw)  # type: ignore[arg-type]  # test-only overrides


def test_url_query_and_api_key_header() -> None:
    d = deployment()
    assert d.api_version == "2024-10-21"  # the row's documented default
    http = ADAPTER.build_request(REQ, d)
    assert http.url == (
        f"{BASE}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    )
    assert http.headers == {"Content-Type": "application/json", "api-key": "az-key"}
    assert orjson.loads(http.body) == {
        "model": "gpt4o-prod",
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_version_from_env_and_argument_and_deployment_name_quoted() -> None:
    env = {"AZURE_API_KEY": "k", "AZURE_API_BASE": BASE, "AZURE_API_VERSION": "2024-06-01"}
    assert resolve_deployment("azure/x", env=env).api_version == "2024-06-01"
    d = resolve_deployment("azure/my dep", api_version="2025-01-01-preview", env=env)
    url = ADAPTER.build_request(REQ, d).url
    assert url.endswith(
        "/openai/deployments/my%20dep/chat/completions?api-version=2025-01-01-preview"
    )


def test_ad_token_option_wins_and_sends_bearer() -> None:
    d = deployment(options={"azure_ad_token": "eyJ.tok"})
    headers = ADAPTER.build_request(REQ, d).headers
    assert headers["Authorization"] == "Bearer eyJ.tok"
    assert "api-key" not in headers


def test_stream_asks_for_usage() -> None:
    http = ADAPTER.build_request(REQ.model_copy(update={"stream": True}), deployment())
    assert orjson.loads(http.body)["stream_options"] == {"include_usage": True}


async def test_prepare_reads_ad_token_env_only_without_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_AD_TOKEN", "env-token")
    with_key = deployment()
    assert await prepare(with_key) is with_key
    prepared = await prepare(deployment(api_key=None))
    assert prepared.options["azure_ad_token"] == "env-token"
    assert ADAPTER.build_request(REQ, prepared).headers["Authorization"] == "Bearer env-token"


async def test_prepare_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_AD_TOKEN", raising=False)
    with pytest.raises(MissingAPIKeyError, match=r"AZURE_API_KEY.*AZURE_AD_TOKEN"):
        await prepare(deployment(api_key=None))
    with pytest.raises(InvalidRequestError, match="AZURE_API_BASE") as info:
        await prepare(deployment(api_base=""))
    assert info.value.param == "api_base"


def test_missing_version_is_a_named_error() -> None:
    with pytest.raises(InvalidRequestError, match="AZURE_API_VERSION"):
        ADAPTER.build_request(REQ, deployment(api_version=None))


def _error(code: str | None, inner: str | None = None) -> bytes:
    error: dict[str, object] = {"message": "blocked", "type": None, "param": "prompt", "code": code}
    if inner:
        error["innererror"] = {
            "code": inner,
            "content_filter_result": {"hate": {"filtered": True, "severity": "high"}},
        }
    return orjson.dumps({"error": error})


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            400,
            _error("content_filter", "ResponsibleAIPolicyViolation"),
            ContentPolicyViolationError,
        ),
        (400, _error("400", "ResponsibleAIPolicyViolation"), ContentPolicyViolationError),
        (400, _error("content_filter"), ContentPolicyViolationError),
        (400, _error("context_length_exceeded"), ContextWindowExceededError),
        (400, _error("invalid_value"), BadRequestError),
        (429, _error("429"), RateLimitError),
    ],
)
def test_error_mapping(status: int, body: bytes, cls: type[Exception]) -> None:
    error = ADAPTER.map_error(status, {"retry-after": "2"}, body, deployment())
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == "blocked"
    assert error.provider == "azure"
    if cls is RateLimitError:
        assert error.retryable
        assert error.retry_after == 2.0


def test_filter_results_kept_and_content_filter_finish_passes_through() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None},
                "finish_reason": "content_filter",
                "content_filter_results": {"violence": {"filtered": True, "severity": "medium"}},
            }
        ],
    }
    response = ADAPTER.parse_response(orjson.dumps(body), REQ, deployment())
    assert response.finish_reason == "content_filter"
    assert response.model_extra == {"prompt_filter_results": body["prompt_filter_results"]}
    extra = response.choices[0].model_extra
    assert extra == {
        "content_filter_results": {"violence": {"filtered": True, "severity": "medium"}}
    }
