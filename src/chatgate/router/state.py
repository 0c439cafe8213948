"""What the router remembers about each deployment: cooldowns, failures, in-flight requests,
latency, and RPM/TPM token buckets.

``RouterState`` is the interface; every method is one atomic step, so a shared implementation
(Redis, one Lua script per method) can replace ``MemoryState`` without changing the router.
Times are the router clock's seconds (monotonic), passed in so tests can drive them.
``RedisState`` (redis_state.py) is the shared implementation, tested by the same tests.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["EWMA_ALPHA", "Health", "Limits", "MemoryState", "RouterState", "Stats"]

EWMA_ALPHA = 0.3  # weight of the newest latency sample


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """How failures turn into cooldowns."""

    allowed_fails: int = 3  # failures within ``window`` that cool a deployment down
    window: float = 60.0
    cooldown: float = 30.0


@dataclass(slots=True)
class Stats:
    """A read-only view of one deployment, as strategies and error messages see it."""

    cooldown_until: float = 0.0
    probing: bool = False  # half-open: its one probe request is in flight
    half_open: bool = False  # its cooldown ended and no request has succeeded since
    in_flight: int = 0
    latency_s: float | None = None  # EWMA of latency (time to first chunk for streams)
    samples: int = 0
    rpm_left: float | None = None
    tpm_left: float | None = None
    last_error: str | None = None
    cooldown_reason: str | None = None  # the failure that set the running cooldown's end
    cooled_at: float = 0.0  # when that failure came

    def available_at(self, now: float) -> float:
        """When it may take a request, ignoring limits: now, or when its cooldown ends."""
        return max(now, self.cooldown_until)

    def settle(self, now: float) -> Stats:
        """An ended cooldown turns half-open: one probe, then healthy or cooled again."""
        if self.cooldown_until and now >= self.cooldown_until:
            self.cooldown_until = 0.0
            self.cooldown_reason = None
            self.half_open = True
        return self


@dataclass(slots=True)
class _Bucket:
    capacity: float
    level: float
    stamp: float

    def refill(self, now: float) -> float:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity / 60.0)
        self.stamp = now
        return self.level

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (the bucket refills over a minute)."""
        missing = min(amount, self.capacity) - self.level
        return 0.0 if missing <= 0 else missing * 60.0 / self.capacity


@dataclass(slots=True)
class _Entry:
    stats: Stats = field(default_factory=Stats)
    failures: deque[float] = field(default_factory=deque)
    rpm: _Bucket | None = None
    tpm: _Bucket | None = None


class RouterState(Protocol):
    async def view(self, ids: Sequence[str], now: float) -> list[Stats]:
        """Current stats, in the order of ``ids``."""
        ...

    async def reserve(self, id: str, limits: Limits, tokens: int, now: float) -> float:
        """Take one request slot (and ``tokens`` of TPM) if all limits allow: returns 0.0.
        Otherwise take nothing and return how long until it could (inf: unknown)."""
        ...

    async def release(self, id: str, limits: Limits, token_correction: int, now: float) -> None:
        """The request ended; ``token_correction`` is actual minus estimated tokens."""
        ...

    async def record_success(self, id: str, latency_s: float, now: float) -> None: ...

    async def record_failure(
        self,
        id: str,
        error: str,
        health: Health,
        now: float,
        *,
        cool_for: float | None = None,
    ) -> float | None:
        """Count a failure; ``cool_for`` cools it down at once for that long. Returns the
        end of the cooldown this failure started, if it started one. A failure that sets the
        cooldown's end becomes its ``cooldown_reason`` (``error``), from ``cooled_at``."""
        ...


class MemoryState:
    """One process's state, in dicts. Single event loop, no awaits inside a method: atomic."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def forget(self, ids: Sequence[str]) -> None:
        for id in ids:
            self._entries.pop(id, None)

    def _entry(self, id: str, now: float) -> _Entry:
        entry = self._entries.get(id)
        if entry is None:
            entry = self._entries[id] = _Entry()
        entry.stats.settle(now)
        return entry

    async def view(self, ids: Sequence[str], now: float) -> list[Stats]:
        out = []
        for id in ids:
            entry = self._entry(id, now)
            stats = entry.stats
            stats.rpm_left = entry.rpm.refill(now) if entry.rpm else None
            stats.tpm_left = entry.tpm.refill(now) if entry.tpm else None
            out.append(stats)
        return out

    async def reserve(self, id: str, limits: Limits, tokens: int, now: float) -> float:
        entry = self._entry(id, now)
        entry.rpm = _bucket(entry.rpm, limits.rpm, now)
        entry.tpm = _bucket(entry.tpm, limits.tpm, now)
        stats = entry.stats
        if now < stats.cooldown_until:
            return stats.cooldown_until - now
        if stats.probing:
            return math.inf  # its half-open probe decides; no second request meanwhile
        if limits.max_parallel is not None and stats.in_flight >= limits.max_parallel:
            return math.inf  # until one finishes
        wait = 0.0
        if entry.rpm is not None:
            entry.rpm.refill(now)
            wait = max(wait, entry.rpm.wait_for(1.0))
        if entry.tpm is not None and tokens > 0:
            entry.tpm.refill(now)
            wait = max(wait, entry.tpm.wait_for(float(tokens)))
        if wait > 0.0:
            return wait
        if entry.rpm is not None:
            entry.rpm.level -= 1.0
        if entry.tpm is not None:
            entry.tpm.level -= tokens
        stats.in_flight += 1
        if stats.half_open:
            stats.probing = True
        return 0.0

    async def release(self, id: str, limits: Limits, token_correction: int, now: float) -> None:
        entry = self._entry(id, now)
        entry.stats.in_flight = max(0, entry.stats.in_flight - 1)
        entry.stats.probing = False
        if entry.tpm is not None and token_correction:
            entry.tpm.refill(now)
            entry.tpm.level -= token_correction  # may go negative: usage beyond the estimate

    async def record_success(self, id: str, latency_s: float, now: float) -> None:
        entry = self._entry(id, now)
        stats = entry.stats
        stats.half_open = False
        stats.last_error = None
        entry.failures.clear()
        if stats.latency_s is None:
            stats.latency_s = latency_s
        else:
            stats.latency_s += EWMA_ALPHA * (latency_s - stats.latency_s)
        stats.samples += 1

    async def record_failure(
        self,
        id: str,
        error: str,
        health: Health,
        now: float,
        *,
        cool_for: float | None = None,
    ) -> float | None:
        entry = self._entry(id, now)
        stats = entry.stats
        stats.last_error = error
        failures = entry.failures
        failures.append(now)
        while failures and failures[0] <= now - health.window:
            failures.popleft()
        if cool_for is None and (stats.half_open or len(failures) >= health.allowed_fails):
            cool_for = health.cooldown  # a failed probe, or too many failures in the window
        if cool_for is None or cool_for <= 0:
            return None
        if now + cool_for >= stats.cooldown_until:
            stats.cooldown_until = now + cool_for
            stats.cooldown_reason = error
            stats.cooled_at = now
        stats.half_open = False
        failures.clear()
        return stats.cooldown_until


def _bucket(bucket: _Bucket | None, limit: int | None, now: float) -> _Bucket | None:
    """The bucket for ``limit`` as it is now: made full, resized, or gone with the limit."""
    if not limit:
        return None
    if bucket is None:
        return _Bucket(float(limit), float(limit), now)
    if bucket.capacity != limit:
        bucket.refill(now)
        bucket.capacity = float(limit)
        bucket.level = min(bucket.level, bucket.capacity)
    return bucket
