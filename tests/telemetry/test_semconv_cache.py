"""The deployment's share of an attempt's attributes is built once and shared: each request
still gets attributes of its own, and each deployment its own server."""

from __future__ import annotations

from chatgate.embedding_types import EmbeddingRequest
from chatgate.providers.base import Deployment
from chatgate.telemetry import semconv
from chatgate.types import ChatRequest


def request(model: str, **extra: object) -> ChatRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return ChatRequest.model_validate(body)


def test_each_request_gets_its_own_attributes_over_the_shared_deployment_part() -> None:
    deployment = Deployment("mistral", "small", "https://api.mistral.ai:8443/v1")
    first = semconv.chat_request_attributes(request("a", temperature=0.5), deployment)
    first["gen_ai.request.model"] = "changed by a caller"
    first["extra"] = True
    second = semconv.chat_request_attributes(request("b"), deployment)
    assert second == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mistral_ai",
        "gen_ai.request.model": "b",
        "server.address": "api.mistral.ai",
        "server.port": 8443,
    }


def test_deployments_on_other_hosts_or_operations_do_not_share() -> None:
    local = Deployment("openai", "m", "http://127.0.0.1:9000/v1")
    default_port = Deployment("openai", "m", "http://gateway.internal/v1")
    no_host = Deployment("openai", "m", "not a url")
    chat = semconv.chat_request_attributes(request("m"), local)
    assert (chat["server.address"], chat["server.port"]) == ("127.0.0.1", 9000)
    other = semconv.chat_request_attributes(request("m"), default_port)
    assert (other["server.address"], other["server.port"]) == ("gateway.internal", 80)
    assert "server.address" not in semconv.chat_request_attributes(request("m"), no_host)
    embedding = EmbeddingRequest.model_validate({"model": "e", "input": "x"})
    embed = semconv.embedding_request_attributes(embedding, local)
    assert embed["gen_ai.operation.name"] == "embeddings"
    assert embed["server.port"] == 9000
