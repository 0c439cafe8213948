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
        self._computing: dt.date | None = None

    async def rows(
        self, days: Iterable[dt.date], dims: Sequence[str]
    ) -> tuple[Rows, list[dt.date]]:
        """The rows of ``days`` for ``dims`` (which must include "all"), and the days with
        no rows yet, being computed in the background."""
        now = self._clock()
        wanted = sorted(set(days), reverse=True)  # the newest matter most
        stored = await self._stored([d for d in wanted if settled(d, now)], dims)
        began = time.monotonic()
        out: Rows = []
        pending: list[dt.date] = []
        for day in wanted:
            rows = stored.get(day)
            if rows is None:
                rows = await self._recent(day, now, began, pending)
            if rows is not None:
                out += [r for r in rows if r["dim"] in dims]
        return out, sorted(pending)

    async def _recent(
        self, day: dt.date, now: float, began: float, pending: list[dt.date]
    ) -> Rows | None:
        """A day not stored: computed now while time allows (unless it is slow to compute
        and was computed less than ``open_ttl_s`` ago), else its last rows while the
        background computes it again; a day with none yet goes in ``pending``."""
        at, last = self._open.get(day, (None, None))
        fresh = at is not None and at + self._open_ttl_s > now
        slow = self._took.get(day, 0.0) > self._budget_s
        if last is not None and fresh and slow:
            return last
        if not slow and self._time_left(began):
            return await self._compute(day)
        self._schedule([day])
        if last is None:
            pending.append(day)
        return last

    async def idle(self) -> None:
        """Wait for the background task to finish (tests and benchmarks)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

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
        self._queued.update(d for d in days if d != self._computing)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        while self._queued:
            day = self._computing = max(self._queued)
            self._queued.discard(day)
            try:
                await self._compute(day)
            except SQLAlchemyError as exc:  # the next view asks again
                log.warning("console: statistics of %s not computed: %s", day, type(exc).__name__)
                self._queued.clear()
            finally:
                self._computing = None


# One per database in this process, so that views share the background work and the memory
# of recent days; weak, so a closed engine takes its own with it.
_BY_ENGINE: weakref.WeakKeyDictionary[AsyncEngine, DayStats] = weakref.WeakKeyDictionary()


def day_stats_for(engine: AsyncEngine) -> DayStats:
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = _BY_ENGINE[engine] = DayStats(engine)
    return found
