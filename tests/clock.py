"""Time in tests: a clock the test moves by hand (for code that takes ``clock=`` / ``sleep=``),
and polling for a condition (for waits on something real: a task reaching a point, another
process, a server's own clock) instead of sleeping a fixed time and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["ManualClock", "poll_until", "wait_until"]


class ManualClock:
    """``clock()`` reads the time; ``advance(s)`` moves it; ``await clock.sleep(s)`` moves it
    and yields to the loop once, so the code under test waits exactly and at once."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 5.0,
    what: str = "condition",
) -> None:
    """Let the loop run until ``condition()`` (awaited when it is a coroutine) holds; fail
    after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = condition()
        if held if isinstance(held, bool) else await held:
            return
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        await asyncio.sleep(0.005)


def poll_until(
    condition: Callable[[], bool],
    timeout_s: float = 5.0,
    what: str = "condition",
    every_s: float = 0.01,
) -> None:
    """Poll ``condition()`` from a blocking test every ``every_s`` until it holds; fail after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        time.sleep(every_s)
