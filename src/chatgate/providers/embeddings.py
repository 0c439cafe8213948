"""Embeddings in OpenAI's /embeddings shape: OpenAI, every OpenAI-compatible row of the
registry and Azure OpenAI over that wire format; Gemini through batchEmbedContents. Pure
functions, like the chat adapters."""

from __future__ import annotations

import orjson
import pydantic

from chatgate.embedding_types import EmbeddingRequest, EmbeddingResponse
from chatgate.errors import APIConnectionError, InvalidRequestError
from chatgate.providers.azure import azure_request
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.gemini.embeddings import (
    build_gemini_embedding_request,
    parse_gemini_embedding_response,
)
from chatgate.providers.registry import PROVIDERS

__all__ = [
    "build_embedding_request",
    "check_embeddings_supported",
    "parse_embedding_response",
]

_WIRE_ADAPTERS = frozenset({"openai", "azure", "gemini"})


def check_embeddings_supported(deployment: Deployment) -> None:
    spec = PROVIDERS[deployment.provider]
    if spec.adapter not in _WIRE_ADAPTERS:
        able = sorted(n for n, s in PROVIDERS.items() if s.adapter in _WIRE_ADAPTERS)
        raise InvalidRequestError(
            f"embeddings are not supported for provider {deployment.provider!r} in chatgate; "
            f"use a model of one of: {', '.join(able)}",
            param="model",
            provider=deployment.provider,
            model=deployment.model,
        )


def build_embedding_request(request: EmbeddingRequest, deployment: Deployment) -> HttpRequest:
    check_embeddings_supported(deployment)
    if deployment.provider == "gemini":
        return build_gemini_embedding_request(request, deployment)
    wire = request.wire()
    wire["model"] = deployment.model
    headers = {"Content-Type": "application/json", **deployment.headers}
    body = orjson.dumps(wire)
    if deployment.provider == "azure":
        base = HttpRequest("POST", "", headers, body)
        return azure_request(base, deployment, "embeddings")
    if deployment.api_key:
        headers["Authorization"] = f"Bearer {deployment.api_key}"
    return HttpRequest("POST", deployment.api_base + "/embeddings", headers, body)


def parse_embedding_response(
    body: bytes, request: EmbeddingRequest, deployment: Deployment
) -> EmbeddingResponse:
    if deployment.provider == "gemini":
        return parse_gemini_embedding_response(body, request, deployment)
    try:
        response = EmbeddingResponse.model_validate_json(body)
    except pydantic.ValidationError as exc:
        raise APIConnectionError(
            f"the provider's answer is not an embeddings list: {exc.errors()[0]['msg']}",
            provider=deployment.provider,
            model=deployment.model,
            body=body[:2000].decode("utf-8", "replace"),
        ) from exc
    return response
