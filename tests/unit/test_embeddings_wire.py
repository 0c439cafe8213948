"""The embeddings request for each provider family, and the response model: pure functions."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from chatgate.embedding_types import EmbeddingRequest, EmbeddingResponse
from chatgate.errors import APIConnectionError, InvalidRequestError
from chatgate.providers.embeddings import build_embedding_request, parse_embedding_response
from chatgate.providers.registry import resolve_deployment

REQUEST = EmbeddingRequest(model="m", input=["a", "b"], dimensions=8)


def test_openai_compatible_request() -> None:
    deployment = resolve_deployment("groq/embed-x", api_key="gk")
    http = build_embedding_request(REQUEST, deployment)
    assert http.url == "https://api.groq.com/openai/v1/embeddings"
    assert http.headers["Authorization"] == "Bearer gk"
    assert orjson.loads(http.body) == {"model": "embed-x", "input": ["a", "b"], "dimensions": 8}


def test_azure_request_uses_the_deployment_url_and_api_key_header() -> None:
    deployment = resolve_deployment(
        "azure/my-embed", api_key="ak", api_base="https://res.openai.azure.com"
    )
    http = build_embedding_request(REQUEST, deployment)
    assert http.url == (
        "https://res.openai.azure.com/openai/deployments/my-embed/embeddings?api-version=2024-10-21"
    )
    assert http.headers["api-key"] == "ak"
    assert "Authorization" not in http.headers


@pytest.mark.parametrize("model", ["anthropic/claude-3-5-haiku", "bedrock/amazon.titan-embed"])
def test_other_providers_are_refused_by_name(model: str) -> None:
    deployment = resolve_deployment(model, api_key="k")
    with pytest.raises(InvalidRequestError, match=f"'{deployment.provider}'") as info:
        build_embedding_request(REQUEST, deployment)
    assert "openai" in info.value.message
    assert info.value.param == "model"


def test_response_keeps_base64_and_unknown_fields() -> None:
    body = orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": "AACAPw=="},
                {"object": "embedding", "index": 0, "embedding": [0.5, 0.25]},
            ],
            "model": "m",
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
            "provider_extra": {"x": 1},
        }
    )
    deployment = resolve_deployment("openai/m", api_key="k")
    response = parse_embedding_response(body, REQUEST, deployment)
    assert response.vectors == [[0.5, 0.25], "AACAPw=="]
    assert orjson.loads(response.__pydantic_serializer__.to_json(response)) == orjson.loads(body)
    with pytest.raises(APIConnectionError, match="not an embeddings list"):
        parse_embedding_response(b'{"data": 3}', REQUEST, deployment)
    assert EmbeddingResponse().object == "list"


def test_gemini_request_and_answer() -> None:
    deployment = resolve_deployment("gemini/text-embedding-004", api_key="gk")
    request = EmbeddingRequest(
        model="text-embedding-004", input=["a", "b"], dimensions=2, task_type="RETRIEVAL_QUERY"
    )
    http = build_embedding_request(request, deployment)
    assert http.url.endswith("/v1beta/models/text-embedding-004:batchEmbedContents")
    assert http.headers["x-goog-api-key"] == "gk"
    item = {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "a"}]},
        "outputDimensionality": 2,
        "taskType": "RETRIEVAL_QUERY",
    }
    assert orjson.loads(http.body)["requests"][0] == item
    answer = orjson.dumps({"embeddings": [{"values": [1.0, 0.5]}, {"values": [0.25, 2.0]}]})
    floats = parse_embedding_response(answer, request, deployment)
    assert floats.vectors == [[1.0, 0.5], [0.25, 2.0]]
    assert floats.usage is None
    encoded = request.model_copy(update={"encoding_format": "base64"})
    packed = parse_embedding_response(answer, encoded, deployment).vectors[0]
    assert isinstance(packed, str)
    assert struct.unpack("<2f", base64.b64decode(packed)) == (1.0, 0.5)
    with pytest.raises(InvalidRequestError, match="text only"):
        build_embedding_request(EmbeddingRequest(model="m", input=[1, 2]), deployment)
