"""Embeddings through the response cache. An embedding is a pure function of its model and
input, so every request is repeatable: a policy's ``mode: auto`` caches them all (``never``
does not, unless the call asks); the per-call control is the one chat calls take. A hit costs
nothing and says what the answer cost when it was made, as a chat hit does.

Identical requests that miss while one is in flight share its call (single-flight, per event
loop, as chat's: cache/singleflight.py). The call runs in its own task and stores its answer
there, so the first caller leaving (a client gone) fails nobody who joined; the task is
cancelled when its last caller leaves. An upstream error reaches every caller of the flight
and is not stored. A caller that joined gets the answer as a hit: it cost nothing more."""

from __future__ import annotations

import asyncio
import time
import weakref
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
    flights = _flights_of_this_loop()
    flight_key = (id(cache), key if not control.no_cache else key + ":fresh")
    flight = flights.get(flight_key)
    if flight is None:
        cache.stats.misses += 1
        store = not control.no_store
        flight = _Flight(_call_and_store(cache, key, call, store, control.ttl or policy.ttl))
        flights[flight_key] = flight
        flight.task.add_done_callback(lambda _: _forget(flights, flight_key, flight))
        return await flight.use()
    cache.stats.coalesced += 1
    return _as_hit(await flight.use(), started)


class _Flight:
    """One upstream call shared by every identical request that missed while it ran."""

    def __init__(self, work: Awaitable[EmbeddingResponse]) -> None:
        self.task = asyncio.ensure_future(work)
        self.users = 0

    async def use(self) -> EmbeddingResponse:
        self.users += 1
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if not self.task.done():
                self.users -= 1
                if self.users == 0:  # nobody waits any more: close the upstream call
                    self.task.cancel()
            raise


_FlightKey = tuple[int, str]
_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_FlightKey, _Flight]] = (
    weakref.WeakKeyDictionary()
)


def _flights_of_this_loop() -> dict[_FlightKey, _Flight]:
    loop = asyncio.get_running_loop()
    flights = _loops.get(loop)
    if flights is None:
        flights = _loops[loop] = {}
    return flights


def _forget(flights: dict[_FlightKey, _Flight], key: _FlightKey, flight: _Flight) -> None:
    if flights.get(key) is flight:
        del flights[key]


async def _call_and_store(
    cache: Cache,
    key: str,
    call: Callable[[], Awaitable[EmbeddingResponse]],
    store: bool,
    ttl: float | None,
) -> EmbeddingResponse:
    response = await call()
    if store:
        await cache.write(key, _encode(response), ttl)
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
    return _hit(response, meta, None if cost is None else Decimal(cost), started)


def _as_hit(shared: EmbeddingResponse, started: float) -> EmbeddingResponse:
    """The answer a joined flight got, as this caller's own hit (the flight's caller keeps the
    original: the two are separate objects)."""
    made = shared.meta
    return _hit(shared.model_copy(), made.model_copy(), made.cost, started)


def _hit(
    response: EmbeddingResponse, meta: ResponseMeta, cost: Decimal | None, started: float
) -> EmbeddingResponse:
    meta.attempts = 0
    meta.cost = Decimal(0)
    meta.cache_hit = True
    meta.cache_saved_cost = cost
    meta.latency_ms = (time.perf_counter() - started) * 1000.0
    response._meta = meta
    return response
