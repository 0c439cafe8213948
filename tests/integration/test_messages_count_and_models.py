"""POST /v1/messages/count_tokens and GET /v1/models[/{id}] through a real `chatgate serve`:
the backend's own count where it has one, a marked estimate otherwise; model lists in
OpenAI's and Anthropic's shapes, scoped to the caller's key; Anthropic error envelopes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.anthropic_server import count_tokens_of
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import deployment, gateway_config, serve
from tests.integration.messages_support import (
    MASTER,
    UPSTREAM_KEY,
    Backends,
    call,
    fresh_gateway,
    module_gateway,
)

backends = pytest.fixture(scope="module")(module_gateway)
fresh = pytest.fixture(fresh_gateway)

ALL = ["gpt", "reasoner", "claude", "gem", "claude-or-gpt", "bedrock"]
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def count_body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "system": "be brief",
        "messages": [{"role": "user", "content": "how many tokens is this sentence?"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    }


def test_count_tokens_asks_anthropic_for_an_anthropic_backend(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages/count_tokens", count_body("claude"))
    assert resp.status_code == 200, resp.text
    sent = fresh.anthropic.last
    assert sent.path == "/v1/messages/count_tokens"
    assert resp.json() == {"input_tokens": count_tokens_of(sent.body)}
    assert resp.headers["x-chatgate-token-count"] == "exact"
    assert resp.headers["x-chatgate-token-count-method"] == "anthropic_api"
    assert sent.body["model"] == "claude-sonnet-4-5"


def test_count_tokens_asks_gemini_for_a_gemini_backend(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages/count_tokens", count_body("gem"))
    assert resp.status_code == 200, resp.text
    assert fresh.gemini.last.path.endswith(":countTokens")
    assert resp.headers["x-chatgate-token-count-method"] == "gemini_api"


def test_count_tokens_is_a_marked_local_count_elsewhere(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages/count_tokens", count_body("gpt"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["input_tokens"] > 10
    assert resp.headers["x-chatgate-token-count"] == "estimate"  # tools make it inexact
    assert resp.headers["x-chatgate-token-count-method"] == "tiktoken:o200k_base"  # gpt-4o's
    assert fresh.openai.requests == []


def test_count_tokens_errors_are_anthropic_errors(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages/count_tokens", {"model": "gpt", "messages": 5})
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "type": "invalid_request_error",
        "message": "messages: input should be a valid list",
    }
    missing = fresh.post("/v1/messages/count_tokens", count_body("nope"))
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"


def test_unknown_paths_under_messages_are_anthropic_404s(fresh: Backends) -> None:
    resp = fresh.post("/v1/messages/batches", {})
    assert resp.status_code == 404
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "not_found_error"


def test_models_in_openai_and_anthropic_shapes(fresh: Backends) -> None:
    listing = fresh.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ALL
    assert listing["data"][0] == {
        "id": "gpt",
        "object": "model",
        "created": 0,
        "owned_by": "chatgate",
    }
    page = fresh.get("/v1/models?limit=2", **ANTHROPIC).json()
    assert [m["id"] for m in page["data"]] == ["gpt", "reasoner"]
    assert page["data"][0]["type"] == "model"
    assert page["has_more"] is True
    assert (page["first_id"], page["last_id"]) == ("gpt", "reasoner")
    rest = fresh.get("/v1/models?limit=10&after_id=reasoner", **ANTHROPIC).json()
    assert [m["id"] for m in rest["data"]] == ALL[2:]
    assert rest["has_more"] is False
    one = fresh.get("/v1/models/claude", **ANTHROPIC).json()
    assert one == {
        "type": "model",
        "id": "claude",
        "display_name": "claude",
        "created_at": "1970-01-01T00:00:00Z",
    }
    assert fresh.get("/v1/models/gem").json()["object"] == "model"


def test_models_missing_are_404_in_the_callers_shape(fresh: Backends) -> None:
    openai_style = fresh.get("/v1/models/nope")
    assert openai_style.status_code == 404
    assert openai_style.json()["error"]["code"] == "model_not_found"
    anthropic_style = fresh.get("/v1/models/nope", **ANTHROPIC)
    assert anthropic_style.status_code == 404
    assert anthropic_style.json()["error"]["type"] == "not_found_error"


def test_models_show_only_what_the_key_may_use(fresh: Backends) -> None:
    key = fresh.new_key(models=["gem", "claude"])
    listing = fresh.get("/v1/models", key=key).json()
    assert [m["id"] for m in listing["data"]] == ["claude", "gem"]
    assert fresh.get("/v1/models/gpt", key=key).status_code == 404
    assert fresh.get("/v1/models/gem", key=key).status_code == 200
    refused = fresh.post("/v1/messages/count_tokens", count_body("gpt"), key=key)
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"


def test_zero_config_lists_no_name_resolved_on_the_fly(tmp_path: Path) -> None:
    with FakeOpenAI() as upstream:
        env = {"OPENAI_API_KEY": "sk-env", "OPENAI_BASE_URL": upstream.base_url}
        with serve(None, tmp_path, env=env) as gateway:
            chat = {"model": "openai/invented-1", "messages": [{"role": "user", "content": "x"}]}
            answer = call("POST", f"{gateway.url}/v1/chat/completions", chat)
            assert answer.status_code == 200, answer.text
            listing = call("GET", f"{gateway.url}/v1/models").json()
    assert "openai/invented-1" not in [m["id"] for m in listing["data"]]


def test_master_key_sees_every_model(fresh: Backends) -> None:
    assert [m["id"] for m in fresh.get("/v1/models", key=MASTER).json()["data"]] == ALL


def test_the_openai_sdk_lists_and_retrieves(fresh: Backends) -> None:
    client = fresh.gateway.openai_client()
    try:
        assert [m.id for m in client.models.list()] == ALL
        assert client.models.retrieve("claude").owned_by == "chatgate"
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve("nope")
        assert missing.value.code == "model_not_found"
    finally:
        client.close()


def test_a_failing_count_endpoint_gives_a_marked_estimate(tmp_path: Path) -> None:
    with FakeGemini() as wrong:  # answers an Anthropic count request with a 404
        claude = deployment(
            "claude", wrong.root_url, "anthropic/claude-sonnet-4-5", api_key=UPSTREAM_KEY
        )
        with serve(gateway_config(claude), tmp_path) as gateway:
            answer = call("POST", f"{gateway.url}/v1/messages/count_tokens", count_body("claude"))
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-chatgate-token-count"] == "estimate"
            assert answer.headers["x-chatgate-token-count-method"] == "estimate:o200k_base"
            assert answer.json()["input_tokens"] > 10
            log = gateway.log_text()
    assert "count endpoint failed (NotFoundError, status 404)" in log
    assert UPSTREAM_KEY not in log
