"""How the cache layer hands an answer to its caller: a hit as a fresh response (or a replayed
stream) with hit meta, a live or shared answer with the meta of the call that made it, always
in the caller's sync/async mode and with its truncation setting.

``LiveSource`` relays a live ChatStream's chunks unchanged, so callers get the cache layer's
own ChatStream even when nothing is cached.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from decimal import Decimal

from chatgate.cache.replay import ReplaySource
from chatgate.cache.singleflight import Flight
from chatgate.errors import TruncatedResponseError
from chatgate.providers.base import Deployment
from chatgate.stream import ChatStream, ChunkSource
from chatgate.types import ChatRequest, ChatResponse, ResponseMeta
from chatgate.wire_chunk import StreamItem

__all__ = ["Delivery", "LiveSource", "finish_meta", "raise_if_truncated"]


class LiveSource:
    def __init__(self, live: ChatStream) -> None:
        self._live = live
        self.provider = ""  # filled from the live answer's meta when it completes
        self.model = ""
        self.request_id = live.request_id
        self.deployment: Deployment | None = live.deployment  # it is the live answer

    @property
    def drained(self) -> bool:
        return self._live.drained

    async def batches(self) -> AsyncGenerator[list[StreamItem], None]:
        async with contextlib.aclosing(self._live.wire_batches()) as batches:
            async for batch in batches:
                yield batch

    def end(self, complete: bool) -> None:
        if not complete:
            self._live.close()

    def abort(self) -> None:
        self._live.close()


def finish_meta(meta: ResponseMeta, made: ChatStream | ChatResponse) -> None:
    """Copy what the live call knew (who answered, its request id, attempts, cost) onto the
    meta of the answer a caller receives; timings stay the caller's own."""
    source = (made.final() if isinstance(made, ChatStream) else made).meta
    meta.provider = source.provider
    meta.model = source.model
    meta.request_id = source.request_id
    meta.deployment = source.deployment
    meta.model_name = source.model_name
    meta.attempts = source.attempts
    meta.attempt_log = list(source.attempt_log)
    meta.cost = source.cost


def raise_if_truncated(response: ChatResponse, raise_on_truncation: bool) -> None:
    if raise_on_truncation and response.truncated:
        raise TruncatedResponseError(
            "the answer stopped at the output token limit (finish_reason 'length'); "
            "raise max_tokens or pass raise_on_truncation=False",
            provider=response.meta.provider,
            model=response.meta.model,
        )


class Delivery:
    """What the caller asked for, to shape what it gets back."""

    __slots__ = ("raise_on_truncation", "request", "started", "sync")

    def __init__(
        self, request: ChatRequest, started: float, sync: bool, raise_on_truncation: bool
    ) -> None:
        self.request = request
        self.started = started
        self.sync = sync
        self.raise_on_truncation = raise_on_truncation

    def stream(
        self,
        source: ChunkSource,
        fill: Callable[[ResponseMeta], None],
        request_id: str | None = None,
    ) -> ChatStream:
        options = self.request.stream_options
        stream = ChatStream(
            source,
            started=self.started,
            sync=self.sync,
            show_usage_chunk=bool(options and options.include_usage),
            raise_on_truncation=self.raise_on_truncation,
            on_complete=lambda response: fill(response.meta),
        )
        stream.request_id = request_id
        return stream

    def hit_meta(
        self, meta: ResponseMeta, made: ResponseMeta, cost: Decimal | None, sim: float | None
    ) -> None:
        meta.provider = made.provider
        meta.model = made.model
        meta.deployment = made.deployment
        meta.model_name = made.model_name
        meta.request_id = None
        meta.attempts = 0
        meta.cost = Decimal(0)
        meta.cache_hit = True
        meta.cache_saved_cost = cost
        meta.cache_similarity = sim

    def hit(
        self, response: ChatResponse, cost: Decimal | None, similarity: float | None
    ) -> ChatResponse | ChatStream:
        if self.request.stream:
            stream = self.stream(
                ReplaySource(response),
                lambda meta: self.hit_meta(meta, response.meta, cost, similarity),
            )
            stream.cache_hit = True
            return stream
        answer = response.model_copy(deep=True)
        answer._meta = ResponseMeta(latency_ms=(time.perf_counter() - self.started) * 1000.0)
        self.hit_meta(answer.meta, response.meta, cost, similarity)
        raise_if_truncated(answer, self.raise_on_truncation)
        return answer

    def flight_meta(self, meta: ResponseMeta, flight: Flight, fresh: bool) -> None:
        response = flight.response
        assert response is not None
        if fresh:
            finish_meta(meta, response)
        else:
            self.hit_meta(meta, response.meta, flight.cost, None)
