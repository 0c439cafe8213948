"""Time in tests: a clock the test moves by hand (for code that takes ``clock=`` / ``sleep=``),
polling for a condition (for waits on something real: a task reaching a point, another
process, a server's own clock) instead of sleeping a fixed time and hoping, and how long a
process waited for a CPU (to take a loaded machine's delays out of a measured time)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["ManualClock", "Stopwatch", "poll_until", "run_queue_wait_s", "wait_until"]


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


def run_queue_wait_s(task: int | None = None) -> float:
    """How long one thread has waited, runnable, for a CPU: the scheduler's run delay
    (/proc/<task>/schedstat); 0.0 once it is gone. ``task`` is a thread id (``native_id``); a
    process id names its main thread, where an asyncio server runs its loop (this process's
    by default). Time a loaded machine took from it, which no bound on its own latency
    should have to absorb."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{task or os.getpid()}/schedstat").read_text().split()[1]) / 1e9
    return 0.0


class Stopwatch:
    """Wall time since it was made (or ``restart()``ed), less the time the threads ``tasks``
    (ids as for ``run_queue_wait_s``; this process's main thread when none are given) waited
    for a CPU meanwhile: what a bound on a server's latency or deadline can hold on a loaded
    machine. Exact on a quiet one (nothing waits); on a busy one a little lenient (two of the
    threads waiting at once are both counted), so name only the threads the time runs on."""

    def __init__(self, *tasks: int) -> None:
        self.tasks = tasks or (os.getpid(),)
        self.restart()

    def restart(self) -> None:
        self._began = time.monotonic()
        self._waited = self._waiting()

    def _waiting(self) -> float:
        return sum(run_queue_wait_s(task) for task in self.tasks)

    def wall_s(self) -> float:
        return time.monotonic() - self._began

    def elapsed_s(self) -> float:
        return max(0.0, self.wall_s() - (self._waiting() - self._waited))
