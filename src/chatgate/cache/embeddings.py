"""Embeddings through the response cache. An embedding is a pure function of its model and
input, so every request is repeatable: a policy's ``mode: auto`` caches them all (``never``
does not, unless the call asks); the per-call control is the one chat calls take. A hit costs
nothing and says what the answer cost when it was made, as a chat hit does."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
import pydantic

from chatgate.cache.keys import embedding_key
from chatgate.cache.layer import Cache
from chatgate.cache.policy import CacheControl, policy_for
from chatgate.embedding_types import EmbeddingRequest, EmbeddingResponse
from chatgate.meta import ResponseMeta

__all__ = ["embed_through"]

_MADE_BY = ("provider", "model", "deployment", "model_name")


async def embed_through(
    cache: Cache,
    request: EmbeddingRequest,
    model_name: str,
    call: Callable[[], Awaitable[EmbeddingResponse]],
    *,
    control: CacheControl | None = None,
    partition: str = "",
) -> EmbeddingResponse:
    """The cache's answer to ``request`` (keyed by ``model_name``, the name asked for, and
    ``partition``), else ``call()``'s, stored."""
    policy = policy_for(model_name, cache.policy, cache.models)
    control = control or CacheControl()
    if control.enabled is False or (policy.mode == "never" and control.enabled is not True):
        cache.stats.bypassed += 1
        return await call()
    namespace = control.namespace if control.namespace is not None else cache.namespace
    key = embedding_key(request, model_name, namespace=namespace, partition=partition)
    started = time.perf_counter()
    if not control.no_cache and (raw := await cache.read(key)) is not None:
        hit = _decode(raw, started)
        if hit is not None:
            cache.stats.hits += 1
            return hit
    cache.stats.misses += 1
    response = await call()
    if not control.no_store:
        await cache.write(key, _encode(response), control.ttl or policy.ttl)
    return response


def _encode(response: EmbeddingResponse) -> bytes:
    meta = response.meta
    made: dict[str, Any] = {name: getattr(meta, name) for name in _MADE_BY}
    made["cost"] = None if meta.cost is None else str(meta.cost)
    return orjson.dumps({"response": response.model_dump(mode="json"), "meta": made})


def _decode(raw: bytes, started: float) -> EmbeddingResponse | None:
    """The stored answer as a hit; None for bytes that are not one (a miss, not an error)."""
    try:
        stored = orjson.loads(raw)
        response = EmbeddingResponse.model_validate(stored["response"])
        made = stored["meta"]
        cost = made.pop("cost")
        meta = ResponseMeta.model_validate(made)
    except (orjson.JSONDecodeError, pydantic.ValidationError, KeyError, TypeError):
        return None
    meta.attempts = 0
    meta.cost = Decimal(0)
    meta.cache_hit = True
    meta.cache_saved_cost = None if cost is None else Decimal(cost)
    meta.latency_ms = (time.perf_counter() - started) * 1000.0
    response._meta = meta
    return response
