"""The cache layer: ``await cache.get_or_call(request, model_name, call)``.

It decides (policy + per-request control), looks the answer up (exact key, then the semantic
index when one is configured), and on a miss joins or starts a single flight that makes the
call and stores a complete answer. The library's completion() and a Router call the same
method; only ``call`` differs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from chatgate.cache import entry as codec
from chatgate.cache.base import CacheBackend, CacheBackendError
from chatgate.cache.keys import cache_key
from chatgate.cache.policy import (
    CacheControl,
    CachePolicy,
    Decision,
    decide,
    policy_for,
    storable_answer,
    storable_error,
)
from chatgate.cache.singleflight import Flight, FlightSource, SingleFlight
from chatgate.cache.sources import Delivery, LiveSource, finish_meta, raise_if_truncated
from chatgate.errors import APIStatusError, InvalidRequestError
from chatgate.stream import ChatStream
from chatgate.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from chatgate.cache.semantic import Probe, SemanticCache

__all__ = ["Cache", "CacheStats", "Call", "cache_status"]

log = logging.getLogger("chatgate.cache")

Call = Callable[[], Awaitable[ChatResponse | ChatStream]]
ProbeOnce = Callable[[], Awaitable["Probe | None"]]
Result = ChatResponse | ChatStream


@dataclass
class CacheStats:
    hits: int = 0  # answered from the store (exact key)
    semantic_hits: int = 0  # answered from the store through a similar question
    coalesced: int = 0  # answered by joining an identical call in flight
    misses: int = 0  # calls made upstream
    stores: int = 0
    bypassed: int = 0  # not cacheable by policy or control
    backend_errors: int = 0


def _backend(spec: CacheBackend | str, options: Mapping[str, Any]) -> CacheBackend:
    if not isinstance(spec, str):
        return spec
    if spec == "memory":
        from chatgate.cache.memory import MemoryBackend

        return MemoryBackend(**options)
    if spec == "sqlite":
        from chatgate.cache.sqlite import SQLiteBackend

        return SQLiteBackend(**options)
    if spec == "redis":
        from chatgate.cache.redis import RedisBackend

        return RedisBackend(**options)
    raise InvalidRequestError(
        f"unknown cache backend {spec!r}: use 'memory', 'sqlite', 'redis' or a backend object",
        param="backend",
    )


def cache_status(result: ChatResponse | ChatStream) -> Literal["hit", "miss"]:
    """What the gateway's ``x-chatgate-cache`` header says for this answer."""
    hit = result.cache_hit if isinstance(result, ChatStream) else result.meta.cache_hit
    return "hit" if hit else "miss"


class Cache:
    """A response cache: a backend, a default policy, per-model policies (exact names or glob
    patterns such as ``"openai/*"``), an optional namespace and an optional semantic index.

    ``backend`` is a backend object or "memory" / "sqlite" / "redis", built with
    ``backend_options`` (e.g. ``max_bytes=``, ``path=``, ``url=``)."""

    def __init__(
        self,
        backend: CacheBackend | str = "memory",
        *,
        policy: CachePolicy | None = None,
        models: Mapping[str, CachePolicy] | None = None,
        namespace: str = "",
        semantic: SemanticCache | None = None,
        **backend_options: Any,
    ) -> None:
        self.backend = _backend(backend, backend_options)
        self.policy = policy or CachePolicy()
        self.models = dict(models or {})
        self.namespace = namespace
        self.semantic = semantic
        self.stats = CacheStats()
        self._flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SingleFlight] = (
            weakref.WeakKeyDictionary()
        )

    # --- the entry point -------------------------------------------------------------------

    async def get_or_call(
        self,
        request: ChatRequest,
        model_name: str,
        call: Call,
        *,
        control: CacheControl | None = None,
        partition: str = "",
        sync: bool = False,
        raise_on_truncation: bool = False,
    ) -> Result:
        """The answer to ``request``, from the cache or from ``call``.

        ``model_name``: the name the caller asked for (a router's model group, or the library's
        "provider/model"); policies are looked up by it and it is part of the key.
        ``call``: makes the request once — returns a ChatResponse, or for ``request.stream`` a
        ChatStream opened for async iteration, and does not raise on truncation: this layer
        applies ``raise_on_truncation`` to what it returns, hit or miss, and returns streams for
        ``sync`` iteration when asked. ``partition``: anything else that must keep answers
        apart (the library passes the API base URL)."""
        started = time.perf_counter()
        policy = policy_for(model_name, self.policy, self.models)
        decision = decide(request, policy, control, self.namespace)
        opts = Delivery(request, started, sync, raise_on_truncation)
        if not decision.active:
            self.stats.bypassed += 1
            return await self._bypass(call, opts)
        key = cache_key(request, model_name, namespace=decision.namespace, partition=partition)
        semantic = self.semantic if policy.semantic else None
        probe: Probe | None = None

        async def probe_once() -> Probe | None:
            nonlocal probe
            if probe is None and semantic is not None:
                probe = await semantic.probe(request, model_name, decision.namespace, partition)
            return probe

        flight_key = key if decision.lookup else key + ":fresh"
        in_flight = flight_key in self._loop_flights()
        if decision.lookup and not in_flight:  # an identical call in flight is joined at once
            found = await self._get(key)
            similarity = None
            if found is None and semantic is not None and (probed := await probe_once()):
                match = await semantic.search(probed)
                if match is not None:
                    found, similarity = await self._get(match[0]), match[1]
            if found is not None:
                self.stats.hits += similarity is None
                self.stats.semantic_hits += similarity is not None
                return self._serve(found, opts, similarity)
        return await self._fly(key, flight_key, decision, call, probe_once, opts)

    def _loop_flights(self) -> SingleFlight:
        loop = asyncio.get_running_loop()
        flights = self._flights.get(loop)
        if flights is None:
            flights = self._flights[loop] = SingleFlight()
        return flights

    # --- lookups and stores ----------------------------------------------------------------

    async def _get(self, key: str) -> codec.Entry | None:
        raw = await self.read(key)
        return None if raw is None else codec.decode(raw)

    async def read(self, key: str) -> bytes | None:
        """The stored bytes, or None: missing, or the backend failed (counted and logged)."""
        try:
            return await self.backend.get(key)
        except CacheBackendError as exc:
            self.stats.backend_errors += 1
            log.warning("cache read failed, answering without the cache: %s", exc)
            return None

    async def write(self, key: str, value: bytes, ttl: float | None) -> bool:
        """Store ``value``; False when the backend failed (counted and logged)."""
        try:
            await self.backend.set(key, value, ttl)
        except CacheBackendError as exc:
            self.stats.backend_errors += 1
            log.warning("cache write failed, the answer was not stored: %s", exc)
            return False
        self.stats.stores += 1
        return True

    async def _store(
        self, key: str, response: ChatResponse, decision: Decision, probe: ProbeOnce
    ) -> None:
        if not (decision.store and storable_answer(response, decision.policy)):
            return
        if not await self.write(key, codec.encode_response(response), decision.ttl):
            return
        probed = await probe()
        if probed is not None and self.semantic is not None:
            await self.semantic.add(probed, key, decision.ttl)

    # --- serving ---------------------------------------------------------------------------

    def _serve(self, found: codec.Entry, opts: Delivery, similarity: float | None) -> Result:
        if found.error is not None:
            raise found.error
        assert found.response is not None
        return opts.hit(found.response, found.cost, similarity)

    async def _bypass(self, call: Call, opts: Delivery) -> Result:
        result = await call()
        if isinstance(result, ChatStream):
            return opts.stream(LiveSource(result), lambda meta: finish_meta(meta, result))
        raise_if_truncated(result, opts.raise_on_truncation)
        return result

    async def _fly(
        self,
        key: str,
        flight_key: str,
        decision: Decision,
        call: Call,
        probe: ProbeOnce,
        opts: Delivery,
    ) -> Result:
        async def work(flight: Flight) -> None:
            if decision.lookup:  # an identical flight may have stored it while we looked
                found = await self._get(key)
                if found is not None:
                    if found.error is not None:
                        raise found.error
                    flight.response = found.response
                    flight.cost = found.cost
                    return
            flight.upstream = True
            self.stats.misses += 1
            try:
                result = await call()
            except APIStatusError as exc:
                if decision.store and storable_error(exc, decision.policy):
                    ttl = min(decision.ttl or decision.policy.error_ttl, decision.policy.error_ttl)
                    await self.write(key, codec.encode_error(exc), ttl)
                raise
            if isinstance(result, ChatStream):
                flight.request_id = result.request_id
                flight.open()
                async for chunk in result:
                    flight.add(chunk)
                result = await result.afinal()
            flight.response = result
            flight.cost = result.meta.cost
            await self._store(key, result, decision, probe)

        flight, first = self._loop_flights().join(flight_key, work)
        handed_over = False
        try:
            await flight.wait_until(lambda: flight.opened)
            if flight.error is not None:
                raise flight.error
            fresh = first and flight.upstream
            if not fresh:
                self.stats.coalesced += 1
            if opts.request.stream:
                stream = opts.stream(
                    FlightSource(flight, "", opts.request.model),
                    lambda meta: opts.flight_meta(meta, flight, fresh),
                    request_id=flight.request_id if fresh else None,
                )
                stream.cache_hit = not fresh
                handed_over = True  # the stream's source leaves the flight when it ends
                return stream
            response = await flight.result()
            if not fresh:
                return opts.hit(response, flight.cost, None)
            raise_if_truncated(response, opts.raise_on_truncation)
            return response
        finally:
            if not handed_over:
                flight.leave()

    async def clear(self) -> None:
        await self.backend.clear()
        if self.semantic is not None:
            await self.semantic.clear()

    async def aclose(self) -> None:
        await self.backend.aclose()
        if self.semantic is not None:
            await self.semantic.aclose()
