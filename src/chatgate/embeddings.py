"""embedding / aembedding: one call for OpenAI-format embeddings from any provider that has
them (OpenAI, the OpenAI-compatible rows of the registry, Azure OpenAI).

    vectors = chatgate.embedding("openai/text-embedding-3-small", ["one", "two"]).vectors

``send_embedding`` is the single-attempt primitive the gateway (and the router) build on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import pydantic

from chatgate.cache.default import CacheArg, resolve_cache
from chatgate.cache.embeddings import embed_through
from chatgate.client import attributed, fill_meta, request_id_of
from chatgate.cost.calc import cost_of, price_of
from chatgate.embedding_types import EmbeddingInput, EmbeddingRequest, EmbeddingResponse
from chatgate.errors import APIError, InvalidRequestError
from chatgate.providers.base import Deployment
from chatgate.providers.embeddings import (
    build_embedding_request,
    check_embeddings_supported,
    parse_embedding_response,
)
from chatgate.providers.registry import get_adapter, prepare_deployment, resolve_deployment
from chatgate.telemetry import spans
from chatgate.transport import http
from chatgate.transport.http import Timeouts
from chatgate.transport.loop_thread import run_sync
from chatgate.types import Usage

__all__ = ["aembedding", "build_embedding", "embedding", "embedding_cost", "send_embedding"]


def build_embedding(model: str, params: Mapping[str, Any]) -> EmbeddingRequest:
    """Validate the caller's arguments into an EmbeddingRequest; errors name the field."""
    try:
        return EmbeddingRequest.model_validate({**params, "model": model})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise InvalidRequestError(f"invalid {where}: {first['msg']}", param=where) from None


async def send_embedding(
    request: EmbeddingRequest, deployment: Deployment, *, timeouts: Timeouts
) -> EmbeddingResponse:
    """One attempt against one deployment."""
    check_embeddings_supported(deployment)
    deployment = await prepare_deployment(deployment)
    http_request = build_embedding_request(request, deployment)
    adapter = get_adapter(deployment.provider)
    span = spans.start_embeddings(request, deployment)
    spans.inject(span, http_request.headers)
    started = time.perf_counter()
    request_id: str | None = None
    try:
        try:
            resp = await http.send(http_request, timeouts)
            request_id = request_id_of(adapter, resp.headers)
            if resp.status >= 400:
                raise adapter.map_error(resp.status, resp.headers, resp.body, deployment)
            response = parse_embedding_response(resp.body, request, deployment)
        except APIError as exc:
            raise attributed(exc, deployment, request_id) from exc.__cause__
    except BaseException as exc:
        spans.end_attempt(span, deployment, started, error=exc, operation="embeddings")
        raise
    fill_meta(response.meta, deployment, response.model, request_id, started)
    response.meta.cost = embedding_cost(response, deployment)
    spans.end_attempt(span, deployment, started, response, operation="embeddings")
    return response


def embedding_cost(response: EmbeddingResponse, deployment: Deployment) -> Decimal | None:
    """The input tokens at the deployment's input price; None without usage or price."""
    usage = response.usage
    if usage is None:
        return None
    price = price_of(deployment, response.model)
    if price is None:
        return None
    return cost_of(Usage(prompt_tokens=usage.prompt_tokens, total_tokens=usage.total_tokens), price)


async def aembedding(
    model: str,
    input: EmbeddingInput,
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | Timeouts | None = None,
    encoding_format: Literal["float", "base64"] | None = None,
    dimensions: int | None = None,
    extra_headers: Mapping[str, str] | None = None,
    api_version: str | None = None,
    provider_options: Mapping[str, Any] | None = None,
    cache: CacheArg = None,
    **params: Any,
) -> EmbeddingResponse:
    """Embed ``input`` (a string, a list of strings, or token ids) with ``model="provider/model"``.

    ``encoding_format="base64"`` returns each vector as the upstream's base64 string, untouched;
    ``cache``: as for ``completion`` (the process's cache from ``configure_cache`` by default;
    an embedding is a pure function of model and input, so a cache's ``auto`` mode keeps them
    all); other OpenAI fields (``user``, ...) go in ``params``."""
    deployment = resolve_deployment(
        model,
        api_key=api_key,
        api_base=api_base,
        headers=extra_headers,
        api_version=api_version,
        options=provider_options,
    )
    if encoding_format is not None:
        params["encoding_format"] = encoding_format
    if dimensions is not None:
        params["dimensions"] = dimensions
    request = build_embedding(deployment.model, {**params, "input": input})
    timeouts = Timeouts.of(timeout)
    cached = resolve_cache(cache)
    if cached is None:
        return await send_embedding(request, deployment, timeouts=timeouts)
    layer, control = cached
    return await embed_through(
        layer,
        request,
        f"{deployment.provider}/{deployment.model}",
        lambda: send_embedding(request, deployment, timeouts=timeouts),
        control=control,
        partition=deployment.api_base,
    )


def embedding(
    model: str,
    input: EmbeddingInput,
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | Timeouts | None = None,
    encoding_format: Literal["float", "base64"] | None = None,
    dimensions: int | None = None,
    extra_headers: Mapping[str, str] | None = None,
    api_version: str | None = None,
    provider_options: Mapping[str, Any] | None = None,
    cache: CacheArg = None,
    **params: Any,
) -> EmbeddingResponse:
    """The blocking form of ``aembedding``; runs on chatgate's private loop thread."""
    return run_sync(
        aembedding(
            model,
            input,
            api_key=api_key,
            api_base=api_base,
            timeout=timeout,
            encoding_format=encoding_format,
            dimensions=dimensions,
            extra_headers=extra_headers,
            api_version=api_version,
            provider_options=provider_options,
            cache=cache,
            **params,
        )
    )
