"""The usage pipeline: finished requests go into a bounded queue; a background task feeds them
to the sinks (metrics, access log, spend record) in small slices, off the request path.

The request path pays one ``deque.append``. Sinks run on the event loop between requests, at
most ``slice_size`` records at a time, so a burst of records never holds the loop for long.

When the queue is full, a request is never waited for: its ``lossless`` sinks (the spend
record, which the spend log then keeps within its own documented bounds: memory, then its
write-ahead file) run at once, on the request path, and only its other sinks (metrics, the
access-log line) are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence

from chatgate.server.context import RequestContext

__all__ = ["Sink", "UsagePipeline"]

log = logging.getLogger("chatgate.server")

Sink = Callable[[RequestContext], None]


class UsagePipeline:
    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        lossless: Sequence[Sink] = (),
        maxsize: int = 10_000,
        interval_s: float = 0.02,
        slice_size: int = 16,
        on_drop: Callable[[], None] | None = None,
        after_drain: Callable[[], None] | None = None,
    ) -> None:
        """``lossless`` sinks get every record, full queue or not (they run after ``sinks``);
        ``after_drain`` runs once after each slice (e.g. to hand a batch of log lines to
        their writer in one piece)."""
        self._sinks = tuple(enumerate([*sinks, *lossless]))
        self._lossless = list(enumerate(lossless, start=len(sinks)))
        self._after_drain = after_drain
        self._queue: deque[RequestContext] = deque()
        self._maxsize = maxsize
        self._interval_s = interval_s
        self._slice = slice_size
        self._on_drop = on_drop
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = False
        self._failed_sinks: set[int] = set()
        self.dropped = 0

    def submit(self, ctx: RequestContext) -> None:
        if len(self._queue) >= self._maxsize:
            for index, sink in self._lossless:
                self._feed(index, sink, ctx)
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return
        self._queue.append(ctx)
        if self._idle:  # the task sleeps until a record comes
            self._idle = False
            self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._wake, self._idle = asyncio.Event(), False  # this loop's
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the background task and process what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.drain()

    async def _run(self) -> None:
        while True:
            # Idle, it waits for a record instead of waking every interval: a timer firing 50
            # times a second cost the event loop whether or not requests came.
            if not self._queue:
                self._idle = True
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self._interval_s)  # records that come meanwhile go together
            while self._queue:
                self.drain(self._slice)
                await asyncio.sleep(0)  # let requests run between slices

    def drain(self, limit: int | None = None) -> int:
        done = 0
        queue = self._queue
        while queue and (limit is None or done < limit):
            ctx = queue.popleft()
            for index, sink in self._sinks:
                try:  # inline rather than through _feed: this runs for every sink and record
                    sink(ctx)
                except Exception:  # a broken sink must not stop the others or the pipeline
                    self._failed(index, sink)
            done += 1
        if done and self._after_drain is not None:
            self._after_drain()
        return done

    def _feed(self, index: int, sink: Sink, ctx: RequestContext) -> None:
        try:
            sink(ctx)
        except Exception:  # a broken sink must not stop the others or the pipeline
            self._failed(index, sink)

    def _failed(self, index: int, sink: Sink) -> None:
        if index not in self._failed_sinks:
            self._failed_sinks.add(index)
            log.exception("usage sink %r failed (reported once)", sink)
