"""ChatStream: the chunks of one streamed answer, for ``for`` and ``async for`` alike.

``StreamAccumulator`` (chatgate.accumulator) is the I/O-free part that folds the chunks into
the final ChatResponse.
``ChatStream`` owns its chunk source: leaving the loop early, ``close()``, or cancelling the
task closes the upstream connection at once, and a stream that breaks off raises. The source is
a live HTTP response (``HttpChunkSource``) or anything else that yields chunks, such as a cache
replay: callers cannot tell the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from chatgate.accumulator import StreamAccumulator  # re-exported: the stream's own fold
from chatgate.cost.calc import response_cost
from chatgate.errors import ChatgateError, TruncatedResponseError
from chatgate.redact import scrub_error
from chatgate.stream_source import ChunkSource, HttpChunkSource  # re-exported: import paths
from chatgate.transport.loop_thread import run_sync, sync_loop
from chatgate.types import Attempt, ChatChunk, ChatResponse, Usage
from chatgate.wire_chunk import StreamItem, WireChunk

if TYPE_CHECKING:
    from chatgate.providers.base import Deployment

__all__ = ["ChatStream", "ChunkSource", "HttpChunkSource", "StreamAccumulator"]

log = logging.getLogger("chatgate")


class ChatStream:
    """A streamed answer. Iterate it (sync or async) for ``ChatChunk``s; ``final()`` gives the
    accumulated ChatResponse; ``ttft_ms`` is the time to the first content-bearing chunk;
    ``cache_hit`` says whether the chunks are a cache replay rather than a live answer."""

    def __init__(
        self,
        source: ChunkSource,
        *,
        started: float,
        sync: bool = False,
        show_usage_chunk: bool = True,
        raise_on_truncation: bool = False,
        on_complete: Callable[[ChatResponse], None] | None = None,
        on_finish: Callable[[ChatResponse | None, BaseException | None], None] | None = None,
    ) -> None:
        self._source = source
        self._started = started
        self._sync = sync
        self._show_usage_chunk = show_usage_chunk
        self._raise_on_truncation = raise_on_truncation
        self._on_complete = on_complete
        self._on_finish = on_finish
        self._finished = False
        self._agen: AsyncGenerator[list[StreamItem], None] | None = None  # started by prefetch
        self._first: list[StreamItem] | None = None
        self._resumed = False
        self._acc = StreamAccumulator()
        self._final: ChatResponse | None = None
        self._iterating = False
        self.ttft_ms: float | None = None
        self.cache_hit = False
        self.attempts = 1  # a router sets how many tries it took to get this stream going
        self.deployment_id: str | None = None  # and the id of its deployment ("smart#0")
        self.attempt_log: list[Attempt] = []  # and every try, as ``meta.attempt_log``
        self.request_id = source.request_id

    # --- iteration -----------------------------------------------------------------------------

    async def prefetch(self) -> None:
        """Read up to the first chunk the caller will see, so that a failure before it raises
        here, where a router can still retry elsewhere, and not in the caller's loop."""
        self._agen = self._batches()
        with contextlib.suppress(StopAsyncIteration):
            self._first = await self._agen.__anext__()

    async def read_ahead(self, enough: Callable[[StreamItem], bool]) -> ChatResponse | None:
        """After ``prefetch``, before anyone reads: hold chunks until one is ``enough`` or the
        answer ends (then it is returned), so that its owner can still judge and replace the
        answer (a tiered call escalating an empty one). A failure raises here."""
        if self._agen is None or self._resumed:
            raise RuntimeError("read_ahead() is for a prefetched stream not yet read")
        held = list(self._first or [])
        try:
            batch = held
            while not any(map(enough, batch)):
                batch = await self._agen.__anext__()
                held += batch
        except StopAsyncIteration:
            pass
        finally:
            self._first = held or None
        return self._final

    def also_on_complete(self, callback: Callable[[ChatResponse], None]) -> None:
        """Call ``callback`` with the final answer too, when it completes (now if it has),
        after the listener given at construction and before the owner's ``on_finish``."""
        if self._final is not None:
            callback(self._final)
            return
        first = self._on_complete

        def both(response: ChatResponse) -> None:
            if first is not None:
                first(response)
            callback(response)

        self._on_complete = both

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        if self._sync:
            return self._hop_to_sync_loop()
        return self._chunks()

    def __iter__(self) -> Iterator[ChatChunk]:
        if not self._sync:
            raise RuntimeError("this stream came from acompletion(): use `async for`")
        agen = self._chunks()
        try:
            while True:
                try:
                    yield run_sync(_next(agen))
                except StopAsyncIteration:
                    return
        finally:  # runs when the loop is left early, too: the generator is closed at once
            run_sync(_aclose(agen))

    async def _hop_to_sync_loop(self) -> AsyncIterator[ChatChunk]:
        agen = self._chunks()
        loop = sync_loop()
        try:
            while True:
                future = asyncio.run_coroutine_threadsafe(_next(agen), loop)
                try:
                    yield await asyncio.wrap_future(future)
                except StopAsyncIteration:
                    return
        finally:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_aclose(agen), loop))

    async def _chunks(self) -> AsyncGenerator[ChatChunk, None]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for chunk in batch:
                    yield chunk

    def batches(self) -> AsyncGenerator[list[ChatChunk], None]:
        """The chunks grouped as they arrived: each list holds what one network read brought
        (a list is never held back to fill it). A relay writes each list in one piece, which
        under load saves a write and an event-loop round per chunk."""
        return self._typed(self.wire_batches())

    def wire_batches(self) -> AsyncGenerator[list[StreamItem], None]:
        """``batches()`` as the source gave them: a chunk from an OpenAI-format upstream is a
        WireChunk (its bytes and data), already folded, and typed only if asked. For a relay
        that forwards bytes: it skips validating every chunk into a ChatChunk."""
        return self._batches() if self._agen is None else self._resume(self._agen)

    async def _typed(
        self, batches: AsyncGenerator[list[StreamItem], None]
    ) -> AsyncGenerator[list[ChatChunk], None]:
        async with contextlib.aclosing(batches):
            async for batch in batches:
                try:
                    yield [c.chunk() if isinstance(c, WireChunk) else c for c in batch]
                except ChatgateError as exc:  # the upstream sent a chunk that is not one
                    self._attach(exc)
                    raise

    async def _resume(
        self, agen: AsyncGenerator[list[StreamItem], None]
    ) -> AsyncGenerator[list[StreamItem], None]:
        if self._resumed:
            raise RuntimeError("a ChatStream can be iterated only once; use final() afterwards")
        self._resumed = True
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            async for batch in agen:
                yield batch
        finally:
            await agen.aclose()

    async def _batches(self) -> AsyncGenerator[list[StreamItem], None]:
        if self._iterating or self._final is not None:
            raise RuntimeError("a ChatStream can be iterated only once; use final() afterwards")
        self._iterating = True
        complete = False
        error: BaseException | None = None
        try:
            async with contextlib.aclosing(self._source.batches()) as batches:
                async for batch in batches:
                    visible = [chunk for chunk in batch if self._take(chunk)]
                    if visible:
                        yield visible
            complete = True
            self._complete()
        except ChatgateError as exc:
            self._attach(exc)
            error = exc
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._source.end(complete)
            self._notify_finish(error)

    def _notify_finish(self, error: BaseException | None) -> None:
        """Tell the owner (a router's bookkeeping) once that the stream is over, however."""
        self._finished = True
        on_finish, self._on_finish = self._on_finish, None
        if on_finish is not None:
            on_finish(self._final, error)

    def add_done_callback(
        self, callback: Callable[[ChatResponse | None, BaseException | None], None]
    ) -> None:
        """Also call ``callback(final, error)`` once the stream is over, however it ended (a
        caller's bookkeeping, such as settling a budget hold); at once if it already is."""
        if self._finished:
            callback(self._final, None)
            return
        first = self._on_finish

        def both(final: ChatResponse | None, error: BaseException | None) -> None:
            try:
                if first is not None:
                    first(final, error)
            finally:
                callback(final, error)

        self._on_finish = both

    def _take(self, item: StreamItem) -> bool:
        """Accumulate the chunk; say whether the caller should see it."""
        if isinstance(item, WireChunk) and self._acc.add_wire(item.data):
            has_choices = bool(item.data.get("choices"))
        else:
            chunk = item.chunk() if isinstance(item, WireChunk) else item
            self._acc.add(chunk)
            has_choices = bool(chunk.choices)
        if self.ttft_ms is None and has_choices:
            self.ttft_ms = (time.perf_counter() - self._started) * 1000.0
        return has_choices or self._show_usage_chunk

    def _complete(self) -> None:
        response = self._acc.response()
        meta = response.meta
        meta.provider = self._source.provider
        meta.model = response.model or self._source.model
        meta.request_id = self.request_id
        meta.latency_ms = (time.perf_counter() - self._started) * 1000.0
        meta.ttft_ms = self.ttft_ms
        if self._source.deployment is not None:
            meta.cost = response_cost(response, self._source.deployment)
        self._final = response
        if self._on_complete is not None:
            self._on_complete(response)
        if response.truncated:
            log.warning(
                "answer truncated at max tokens (provider=%s model=%s)", meta.provider, meta.model
            )
            if self._raise_on_truncation:
                raise TruncatedResponseError(
                    "the answer stopped at the output token limit (finish_reason 'length')",
                    provider=meta.provider,
                    model=meta.model,
                    request_id=meta.request_id,
                )

    def _attach(self, exc: ChatgateError) -> None:
        """Attribute a mid-stream error and scrub it (chatgate.redact: where it enters the core)."""
        exc.provider = exc.provider or self._source.provider
        exc.model = exc.model or self._source.model
        exc.request_id = exc.request_id or self.request_id
        scrub_error(exc, self._source.deployment)

    # --- results and cleanup -------------------------------------------------------------------

    @property
    def usage(self) -> Usage | None:
        return self._acc.usage

    @property
    def drained(self) -> bool:
        """The upstream has sent everything: the rest of the iteration ends without waiting."""
        return self._first is None and self._source.drained

    @property
    def deployment(self) -> Deployment | None:
        """Where the answer comes from (None for a replay: someone else accounts for it)."""
        return self._source.deployment

    def snapshot(self) -> ChatResponse:
        """What has arrived so far, as a response: for billing a stream cut off early."""
        return self._final if self._final is not None else self._acc.response()

    def final(self) -> ChatResponse:
        """The accumulated answer. A sync stream is read to its end first if need be."""
        if self._final is None:
            if not self._sync:
                raise RuntimeError("the stream is not finished: `await stream.afinal()`")
            for _ in self:
                pass
        assert self._final is not None
        return self._final

    async def afinal(self) -> ChatResponse:
        if self._final is None:
            async for _ in self:
                pass
        assert self._final is not None
        return self._final

    def close(self) -> None:
        """Abort the stream and its upstream connection (safe to call more than once)."""
        if self._final is not None:
            return
        if self._sync:  # the connection lives on the private loop's thread
            sync_loop().call_soon_threadsafe(self._abort)
        else:
            self._abort()

    def _abort(self) -> None:
        self._source.abort()
        self._notify_finish(None)

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


async def _next(agen: AsyncIterator[ChatChunk]) -> ChatChunk:
    return await agen.__anext__()


async def _aclose(agen: AsyncGenerator[ChatChunk, None]) -> None:
    await agen.aclose()
