"""Azure OpenAI through chatgate.completion against the fake OpenAI server over real sockets:
what is Azure's own (paths, api-version, auth headers, content filters). What every provider
does (answers, streams, tools, errors): tests/conformance/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web

import chatgate
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    chunk_json,
    completion_json,
    text_stream,
)

PATH = "/openai/deployments/gpt4o-prod/chat/completions"


class FakeAzure(FakeOpenAI):
    """The OpenAI fake, also recording each request's query string (Azure's api-version)."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(request.query_string)
        return await super()._handle(request)


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzure]:
    with FakeAzure() as server:
        monkeypatch.setenv("AZURE_API_BASE", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("AZURE_API_KEY", "az-secret-key")
        monkeypatch.delenv("AZURE_API_VERSION", raising=False)
        monkeypatch.delenv("AZURE_AD_TOKEN", raising=False)
        yield server


def ask(content: str = "hi", **kw: object) -> chatgate.ChatResponse:
    return chatgate.completion(
        model="azure/gpt4o-prod", messages=[{"role": "user", "content": content}], **kw
    )


def test_non_stream_path_query_headers_and_body(azure: FakeAzure) -> None:
    response = ask("what is up", temperature=0)
    assert response.content == "echo: what is up"
    assert response.meta.provider == "azure"
    assert response.meta.request_id == "req_fake_1"
    sent = azure.last
    assert (sent.method, sent.path) == ("POST", PATH)
    assert azure.queries == ["api-version=2024-10-21"]
    assert sent.headers["api-key"] == "az-secret-key"
    assert "Authorization" not in sent.headers
    assert sent.body == {
        "model": "gpt4o-prod",
        "messages": [{"role": "user", "content": "what is up"}],
        "temperature": 0.0,
    }


def test_api_version_argument_and_ad_token_env(
    azure: FakeAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_API_KEY")
    monkeypatch.setenv("AZURE_AD_TOKEN", "entra-token")
    ask(api_version="2025-01-01-preview")
    assert azure.queries == ["api-version=2025-01-01-preview"]
    assert azure.last.headers["Authorization"] == "Bearer entra-token"
    assert "api-key" not in azure.last.headers


async def test_stream_with_usage_and_prompt_filter_chunk(azure: FakeAzure) -> None:
    filters = [{"prompt_index": 0, "content_filter_results": {}}]
    first = {**chunk_json(no_choices=True), "usage": None, "prompt_filter_results": filters}
    azure.script(Reply(chunks=[first, *text_stream(["Hel", "lo"], usage=(5, 2))]))
    stream = await chatgate.acompletion(
        model="azure/gpt4o-prod",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    final = await stream.afinal()
    assert final.content == "Hello"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (5, 2)
    assert chunks[-1].choices == []
    assert azure.last.body["stream_options"] == {"include_usage": True}
    assert azure.queries == ["api-version=2024-10-21"]


def test_content_filter_error_and_finish_reason(azure: FakeAzure) -> None:
    error = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure "
            "OpenAI's content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"hate": {"filtered": True, "severity": "high"}},
            },
        }
    }
    azure.script(
        Reply(status=400, json=error, headers={"apim-request-id": "apim-1"}),
        Reply(json=completion_json(None, finish_reason="content_filter")),
    )
    with pytest.raises(chatgate.ContentPolicyViolationError) as info:
        ask()
    assert info.value.status_code == 400
    assert info.value.request_id == "apim-1"
    assert not info.value.retryable
    assert info.value.body["error"]["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert ask().finish_reason == "content_filter"


def test_provider_options_reach_the_adapter(azure: FakeAzure) -> None:
    ask(provider_options={"azure_ad_token": "token-from-argument"})
    assert azure.last.headers["Authorization"] == "Bearer token-from-argument"
    assert "api-key" not in azure.last.headers
