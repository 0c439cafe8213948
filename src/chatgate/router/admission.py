"""Global admission control: at most N calls in flight, a bounded queue served by priority,
and beyond that a fast RateLimitError with an honest retry_after instead of unbounded waiting."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from dataclasses import dataclass, field

from chatgate.errors import RateLimitError
from chatgate.telemetry import steps

__all__ = ["Admission"]


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class Admission:
    """``priority``: lower is served first (0 is the default; negative jumps the queue)."""

    def __init__(self, max_in_flight: int | None, max_queue: int = 0) -> None:
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.in_flight = 0
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._service_s = 1.0  # moving average of how long one call holds its slot

    @property
    def queued(self) -> int:
        return sum(1 for w in self._queue if not w.future.done())

    def _reject(self, why: str) -> RateLimitError:
        per_slot = self._service_s / max(1, self.max_in_flight or 1)
        retry_after = max(0.1, math.ceil(per_slot * (self.queued + 1) * 10) / 10)
        return RateLimitError(
            f"chatgate is at capacity: {self.in_flight} calls in flight, {self.queued} queued "
            f"(max_parallel_requests={self.max_in_flight}, max_queue={self.max_queue}); {why}",
            status_code=429,
            retryable=True,
            retry_after=retry_after,
        )

    async def enter(self, priority: int, timeout: float) -> float:
        """Take a slot, waiting in the queue at most ``timeout`` seconds. Returns the time
        the call started (for the service-time average)."""
        if self.max_in_flight is None or self.in_flight < self.max_in_flight:
            self.in_flight += 1
            return time.perf_counter()
        if self.queued >= self.max_queue:
            raise self._reject("retry later")
        waiter = _Waiter(priority, next(self._seq), asyncio.get_running_loop().create_future())
        heapq.heappush(self._queue, waiter)
        with steps.step("chatgate.admission.wait"):  # a trace shows the time spent queued
            try:
                async with asyncio.timeout(timeout):
                    await waiter.future
            except TimeoutError:
                if not waiter.future.cancelled() and waiter.future.done():
                    self.leave(time.perf_counter())  # granted as time ran out: pass it on
                raise self._reject("the call's deadline passed while queued") from None
            except asyncio.CancelledError:
                if not waiter.future.cancelled() and waiter.future.done():
                    self.leave(time.perf_counter())
                raise
        return time.perf_counter()

    def leave(self, started: float) -> None:
        """Give the slot to the best waiter, or free it."""
        self._service_s = 0.9 * self._service_s + 0.1 * (time.perf_counter() - started)
        while self._queue:
            waiter = heapq.heappop(self._queue)
            if not waiter.future.done():
                waiter.future.set_result(None)  # the slot passes on; in_flight is unchanged
                return
        self.in_flight -= 1
