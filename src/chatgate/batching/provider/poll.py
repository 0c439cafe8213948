"""How often a run asks whether its batches have ended: a growing wait, with the clock and
the sleep injected so tests never wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["PollPolicy"]


@dataclass
class PollPolicy:
    """Waits ``first_s``, then ``factor`` times longer each round, at most ``max_s``; gives up
    (the batches keep running; a rerun collects them) after ``max_wait_s`` if set."""

    first_s: float = 2.0
    factor: float = 1.5
    max_s: float = 60.0
    max_wait_s: float | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    _next: float = field(default=0.0, init=False, repr=False)
    _started: float | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        self._next = self.first_s
        self._started = self.clock()

    def out_of_time(self) -> bool:
        if self.max_wait_s is None or self._started is None:
            return False
        return self.clock() - self._started >= self.max_wait_s

    async def wait(self) -> None:
        delay = self._next
        if self.max_wait_s is not None and self._started is not None:
            left = self.max_wait_s - (self.clock() - self._started)
            delay = max(min(delay, left), 0.0)
        self._next = min(self._next * self.factor, self.max_s)
        await self.sleep(delay)
