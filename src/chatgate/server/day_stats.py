"""Where the Overview's per-day statistics come from: stored, remembered, or computed now
or in the background, so that no view waits more than about ``budget_s`` for them.

A day over for more than ``SETTLE_S`` is computed once and stored in ``console_daily``
(late records, such as a spend file replayed after a restart, land before that). A more
recent day is computed on every view while time allows, and remembered in memory for
``open_ttl_s``; one whose last computation took longer than ``budget_s`` (a busy day on a
large database) is shown as remembered and computed again in the background. A view
computes the days it lacks newest first until ``budget_s`` is spent; the rest are
``pending``: one background task per process and database computes them (a recent one
meanwhile shows its remembered rows), and the page asks again. So the first view after an
upgrade on a large database is quick, and fills in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.server.overview_days import day_rows, settled
from chatgate.store.schema.console import CONSOLE_DAILY

__all__ = ["DayStats", "day_stats_for"]

log = logging.getLogger("chatgate.server")
Rows = list[dict[str, Any]]
T = CONSOLE_DAILY.c


class DayStats:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], float] = time.time,
        budget_s: float = 0.5,
        open_ttl_s: float = 60.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._budget_s = budget_s
        self._open_ttl_s = open_ttl_s
        self._open: dict[dt.date, tuple[float, Rows]] = {}  # day -> (computed at, rows)
        self._took: dict[dt.date, float] = {}  # day -> seconds its last computation took
        self._queued: set[dt.date] = set()
        self._task: asyncio.Task[None] | None = None

    async def rows(
        self, days: Iterable[dt.date], dims: Sequence[str]
    ) -> tuple[Rows, list[dt.date]]:
        """The rows of ``days`` for ``dims`` (which must include "all"), and the days being
        computed in the background (a recent day among them may have its last rows, at most
        ``open_ttl_s`` old; the others have none yet)."""
        now = self._clock()
        wanted = sorted(set(days), reverse=True)  # the newest matter most
        stored = await self._stored([d for d in wanted if settled(d, now)], dims)
        began = time.monotonic()
        out: Rows = []
        pending: list[dt.date] = []
        for day in wanted:
            rows = stored.get(day)
            remembered = self._remembered(day, now) if rows is None else None
            slow = self._took.get(day, 0.0) > self._budget_s  # too big to compute per view
            if rows is None and not (remembered and slow) and self._time_left(began):
                rows = await self._compute(day)  # a day still open: fresh while time allows
            elif rows is None:
                rows = remembered
                pending.append(day)  # to compute (again) in the background
            if rows is not None:
                out += [r for r in rows if r["dim"] in dims]
        if pending:
            self._schedule(pending)
        return out, sorted(pending)

    async def idle(self) -> None:
        """Wait for the background task to finish (tests and benchmarks)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def _remembered(self, day: dt.date, now: float) -> Rows | None:
        found = self._open.get(day)
        return found[1] if found is not None and found[0] + self._open_ttl_s > now else None

    async def _stored(self, days: Sequence[dt.date], dims: Sequence[str]) -> dict[dt.date, Rows]:
        if not days:
            return {}
        query = select(CONSOLE_DAILY).where(T.day.in_(days), T.dim.in_(dims))
        out: dict[dt.date, Rows] = {}
        async with self._engine.connect() as conn:
            for row in await conn.execute(query):
                out.setdefault(row.day, []).append(dict(row._mapping))
        # a day is stored whole or not at all (one transaction); "all" marks it
        return {day: rows for day, rows in out.items() if any(r["dim"] == "all" for r in rows)}

    def _time_left(self, began: float) -> bool:
        return time.monotonic() - began < self._budget_s

    async def _compute(self, day: dt.date) -> Rows:
        began = time.monotonic()
        async with self._engine.connect() as conn:
            rows = await day_rows(conn, day)
        self._took[day] = time.monotonic() - began
        now = self._clock()
        if not settled(day, now):
            self._open[day] = (now, rows)
            return rows
        try:
            async with self._engine.begin() as conn:
                await conn.execute(delete(CONSOLE_DAILY).where(T.day == day))
                await conn.execute(insert(CONSOLE_DAILY), [{**r, "computed_at": now} for r in rows])
        except IntegrityError:
            pass  # another process stored the same day first: the same numbers
        return rows

    def _schedule(self, days: Iterable[dt.date]) -> None:
        self._queued.update(days)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        while self._queued:
            day = max(self._queued)
            self._queued.discard(day)
            try:
                await self._compute(day)
            except SQLAlchemyError as exc:  # the next view asks again
                log.warning("console: statistics of %s not computed: %s", day, type(exc).__name__)
                self._queued.clear()


# One per database in this process, so that views share the background work and the memory
# of recent days; weak, so a closed engine takes its own with it.
_BY_ENGINE: weakref.WeakKeyDictionary[AsyncEngine, DayStats] = weakref.WeakKeyDictionary()


def day_stats_for(engine: AsyncEngine) -> DayStats:
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = _BY_ENGINE[engine] = DayStats(engine)
    return found
