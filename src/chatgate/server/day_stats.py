"""Where the Overview's per-day statistics come from: stored, remembered, or computed now
or in the background, so that no view waits more than about ``budget_s`` for them.

A day over for more than ``SETTLE_S`` is computed once and stored in ``console_daily``
(late records, such as a spend file replayed after a restart, land before that). A more
recent day is computed again on a view, and remembered in memory; one whose computation
took longer than ``budget_s`` (a busy day on a large database) is shown as remembered for
``open_ttl_s``, then computed again in the background. A view waits for the days it lacks
(newest first, one computation at a time) until ``budget_s`` is spent; the rest go on in the
background and are ``pending``: the page asks again. So the first view after an upgrade on
a large database is quick, and fills in.
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
        self._tasks: dict[dt.date, asyncio.Task[Rows | None]] = {}  # computing now or queued
        self._gate: asyncio.Semaphore | None = None  # one day at a time: the database's load

    async def rows(
        self, days: Iterable[dt.date], dims: Sequence[str]
    ) -> tuple[Rows, list[dt.date]]:
        """The rows of ``days`` for ``dims`` (which must include "all"), and the days with
        no rows yet, being computed in the background."""
        now = self._clock()
        wanted = sorted(set(days), reverse=True)  # the newest matter most
        stored = await self._stored([d for d in wanted if settled(d, now)], dims)
        deadline = time.monotonic() + self._budget_s
        out: Rows = []
        pending: list[dt.date] = []
        for day in wanted:
            rows = stored.get(day)
            if rows is None:
                rows = await self._recent(day, now, deadline)
            if rows is None:
                pending.append(day)
            else:
                out += [r for r in rows if r["dim"] in dims]
        return out, sorted(pending)

    async def _recent(self, day: dt.date, now: float, deadline: float) -> Rows | None:
        """A day not stored: its last rows if it is slow to compute and they are less than
        ``open_ttl_s`` old; else computed, waiting for it until ``deadline`` at most (the
        computation goes on in the background), with its last rows, if any, meanwhile."""
        at, last = self._open.get(day, (None, None))
        fresh = at is not None and at + self._open_ttl_s > now
        slow = self._took.get(day, 0.0) > self._budget_s
        if last is not None and fresh and slow:
            return last
        task = self._tasks.get(day)
        if task is None:
            task = self._tasks[day] = asyncio.get_running_loop().create_task(self._guarded(day))
            task.add_done_callback(lambda _: self._tasks.pop(day, None))
        if slow and last is not None:
            return last
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
        return task.result() if done else last

    async def idle(self) -> None:
        """Wait for the background computations to finish (tests and benchmarks)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

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

    async def _guarded(self, day: dt.date) -> Rows | None:
        if self._gate is None:
            self._gate = asyncio.Semaphore(1)
        async with self._gate:
            try:
                return await self._compute(day)
            except SQLAlchemyError as exc:  # the next view asks again
                log.warning("console: statistics of %s not computed: %s", day, type(exc).__name__)
                return None

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


# One per database in this process, so that views share the background work and the memory
# of recent days; weak, so a closed engine takes its own with it.
_BY_ENGINE: weakref.WeakKeyDictionary[AsyncEngine, DayStats] = weakref.WeakKeyDictionary()


def day_stats_for(engine: AsyncEngine) -> DayStats:
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = _BY_ENGINE[engine] = DayStats(engine)
    return found
