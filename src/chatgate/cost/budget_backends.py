"""Where budget counters live: the async ``BudgetBackend`` protocol and the in-memory
backend (one process). ``budgets_sql.SqlBudgetBackend`` is the one shared across processes.

Amounts are integer picodollars. A reservation is all-or-nothing over its lines.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatgate.cost.budgets import Line

__all__ = ["BudgetBackend", "MemoryBudgetBackend"]


class BudgetBackend(Protocol):
    async def reserve(
        self, reservation_id: str, lines: Sequence[Line], amount: int, expires_at: float
    ) -> tuple[Line, int, int] | None:
        """Hold ``amount`` on every line, or on none: returns None when granted, else the
        refusing line with its spent and reserved."""
        ...

    async def settle(
        self, reservation_id: str, lines: Sequence[Line], reserved: int, actual: int
    ) -> list[int]:
        """Drop the hold, add ``actual`` to spent; returns spent after, per line."""
        ...

    async def read(self, lines: Sequence[Line]) -> list[tuple[int, int]]: ...

    async def renew(self, before: float, expires_at: float) -> int:
        """Move to ``expires_at`` the expiry of the holds this backend took and has not settled
        (their calls are still running) that expire before ``before``; returns how many."""
        ...

    async def sweep(self, now: float) -> int:
        """Release reservations whose holder died (expired); returns how many."""
        ...


class MemoryBudgetBackend:
    """Counters in this process (thread-safe: the sync API runs on its own loop thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], list[int]] = {}
        self._held: dict[str, tuple[tuple[Line, ...], int, float]] = {}

    async def reserve(
        self, reservation_id: str, lines: Sequence[Line], amount: int, expires_at: float
    ) -> tuple[Line, int, int] | None:
        with self._lock:
            counters = [self._counters.setdefault((x.budget_id, x.period), [0, 0]) for x in lines]
            for line, (spent, reserved) in zip(lines, counters, strict=True):
                if spent + reserved + amount > line.limit:
                    return line, spent, reserved
            for counter in counters:
                counter[1] += amount
            self._held[reservation_id] = (tuple(lines), amount, expires_at)
            return None

    async def settle(
        self, reservation_id: str, lines: Sequence[Line], reserved: int, actual: int
    ) -> list[int]:
        with self._lock:
            held = reserved if self._held.pop(reservation_id, None) is not None else 0
            after = []
            for line in lines:
                counter = self._counters.setdefault((line.budget_id, line.period), [0, 0])
                counter[0] += actual
                counter[1] -= held
                after.append(counter[0])
            return after

    async def read(self, lines: Sequence[Line]) -> list[tuple[int, int]]:
        with self._lock:
            found = [self._counters.get((x.budget_id, x.period), [0, 0]) for x in lines]
            return [(spent, reserved) for spent, reserved in found]

    async def renew(self, before: float, expires_at: float) -> int:
        with self._lock:
            due = [rid for rid, (_, _, until) in self._held.items() if until < before]
            for rid in due:
                lines, amount, _ = self._held[rid]
                self._held[rid] = (lines, amount, expires_at)
            return len(due)

    async def sweep(self, now: float) -> int:
        with self._lock:
            expired = [rid for rid, (_, _, until) in self._held.items() if until < now]
            for rid in expired:
                lines, amount, _ = self._held.pop(rid)
                for line in lines:
                    self._counters[(line.budget_id, line.period)][1] -= amount
            return len(expired)
