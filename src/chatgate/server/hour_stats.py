"""Where the Overview's hour buckets come from: closed hours stored in ``console_hourly``,
the rest computed from the spend log on each view, so that no view scans days of rows.

An hour is **closed** once it ended more than ``settle_s`` ago (5 minutes): its statistics
are computed once, in the background, and stored with the number of spend-log rows they
counted. A view reads a closed hour's stored rows only while the log holds no more rows for
that hour than that number (one grouped count on the ``ts`` index; spend rows are only ever
added, and removed only by retention, a whole day at a time): a late record (a write-ahead
file replayed after a crash, a batch that records late) makes the hour stale, and it is
computed again. A stale or missing closed hour is computed in the background, a view
waiting for those at most ``budget_s`` in all; the hours not ready by then count zero and
their days are ``pending`` (the page asks again). The hours not closed, and the partial
hours at the window's edges, are computed from the log on each view: a few hours of rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatgate.server.hour_checks import still_true
from chatgate.server.log_filters import Window
from chatgate.server.overview_hours import BY, TOP_PER_HOUR, Row, hour_rows
from chatgate.store.schema.console import CONSOLE_HOURLY

__all__ = ["SETTLE_HOUR_S", "HourStats", "hour_stats_for", "store"]

SETTLE_HOUR_S = 300.0
_LOCK = 0x686F7572  # "hour": with the day's number, the advisory lock of its hours' writes
log = logging.getLogger("chatgate.server")
T = CONSOLE_HOURLY.c
Range = tuple[int, int]  # [first hour, last hour + 1)


class HourStats:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], float] = time.time,
        budget_s: float = 0.5,
        settle_s: float = SETTLE_HOUR_S,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._budget_s = budget_s
        self._settle_s = settle_s
        self._tasks: dict[Range, asyncio.Task[list[Row] | None]] = {}
        self._gate = asyncio.Semaphore(1)

    async def rows(self, span: Window, by: str) -> tuple[list[Row], list[dt.date]]:
        """The rows ("all" and ``by``) of every hour of ``span``, and the days of the closed
        hours still being computed (they have no rows yet)."""
        deadline = time.monotonic() + self._budget_s
        first = math.ceil(span.since / 3600)  # the first whole hour
        closed_end = int((self._clock() - self._settle_s) // 3600)
        last = min(int(span.until // 3600), closed_end)  # whole closed hours: [first, last)
        if last <= first:
            async with self._engine.connect() as conn:
                return await hour_rows(conn, span.since, span.until, [by], None), []
        dims = ("all", by)
        # on two connections: the database reads the log's edges while it counts the rest
        live, (stored, stale) = await asyncio.gather(
            self._edges(span, first, last, by), self._stored(first, last, dims, closed_end)
        )
        pending: list[dt.date] = []
        if stale:
            wanted = set(stale).intersection(range(first, last))
            done, pending = await self._fill(stale, deadline, wanted)
            stored += [r for r in done if r["dim"] in dims]
        return stored + live, pending

    async def _edges(self, span: Window, first: int, last: int, by: str) -> list[Row]:
        """The window's partial first hour and its hours from ``last`` on, from the log."""
        out = []
        async with self._engine.connect() as conn:
            if span.since < first * 3600:
                out += await hour_rows(conn, span.since, first * 3600, [by], None)
            if last * 3600 < span.until:
                out += await hour_rows(conn, last * 3600, span.until, [by], None)
        return out

    async def _stored(
        self, first: int, last: int, dims: Sequence[str], closed_end: int
    ) -> tuple[list[Row], list[int]]:
        """The stored rows of the hours in [first, last) still true of the log, and the
        hours to compute: those that have none (never computed, or stale), and the hours
        missing from the closed days of the window."""
        query = select(CONSOLE_HOURLY).where(T.hour >= first, T.hour < last, T.dim.in_(dims))
        async with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(query)]
            computed = {r["hour"]: r["requests"] for r in rows if r["dim"] == "all"}
            good, missing = await still_true(conn, computed, first, last, closed_end)
        stale = [h for h in range(first, last) if h not in good]
        return [r for r in rows if r["hour"] in good], stale + missing

    async def _fill(
        self, hours: Sequence[int], deadline: float, wanted: set[int]
    ) -> tuple[list[Row], list[dt.date]]:
        """Compute ``hours`` (a range per day, newest first), waiting until ``deadline``
        (monotonic) at most for the ranges holding ``wanted`` hours; the rows of the wanted
        hours done (a range also recomputes the stored hours between), and the days of the
        rest."""
        out: list[Row] = []
        pending: list[dt.date] = []
        for span in sorted(_per_day(hours), reverse=True):
            task = self._tasks.get(span)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._guarded(span))
                self._tasks[span] = task
                task.add_done_callback(self._forget(span))
            if not wanted.intersection(range(*span)):
                continue  # hours outside the window: in the background only
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            rows = task.result() if done else None
            if rows is None:
                pending.append(_day(span[0]))
            else:
                out += [r for r in rows if r["hour"] in wanted]
        return out, sorted(set(pending))

    def _forget(self, span: Range) -> Callable[[asyncio.Task[list[Row] | None]], None]:
        def forget(_: asyncio.Task[list[Row] | None]) -> None:
            self._tasks.pop(span, None)

        return forget

    async def idle(self) -> None:
        """Wait for the background computations to finish (tests and benchmarks)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def _guarded(self, span: Range) -> list[Row] | None:
        """Compute and store the hours of ``span``, one range at a time (the database's
        load); None when the database failed (the next view asks again)."""
        first, last = span
        try:
            async with self._gate:
                async with self._engine.connect() as conn:
                    rows = await hour_rows(
                        conn, first * 3600.0, last * 3600.0, list(BY), TOP_PER_HOUR
                    )
                await store(self._engine, span, rows, self._clock())
        except SQLAlchemyError as exc:
            log.warning("console: hours from %s not computed: %s", span, type(exc).__name__)
            return None
        return rows


async def store(engine: AsyncEngine, span: Range, rows: Sequence[Row], now: float) -> None:
    """Replace the stored rows of the hours in ``span`` with ``rows``, in one transaction:
    an hour is stored whole or not at all. Processes storing the same hours take turns (an
    advisory lock on PostgreSQL; SQLite has one writer at a time), and a row another one
    inserted meanwhile is overwritten, not an error."""
    first, last = span
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(:a, :b)")
            await conn.execute(lock, {"a": _LOCK, "b": first // 24})  # ranges are per day
        await conn.execute(delete(CONSOLE_HOURLY).where(T.hour >= first, T.hour < last))
        if rows:
            await conn.execute(_upsert(conn), [{**r, "computed_at": now} for r in rows])


def _upsert(conn: AsyncConnection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(CONSOLE_HOURLY)
    keys = {"hour", "dim", "name"}
    return stmt.on_conflict_do_update(
        index_elements=sorted(keys),
        set_={k.name: stmt.excluded[k.name] for k in CONSOLE_HOURLY.c if k.name not in keys},
    )


def _day(hour: int) -> dt.date:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).date()


def _per_day(hours: Sequence[int]) -> list[Range]:
    """The hours as one range per UTC day, from its first to its last (the stored hours
    between are computed again with them: one scan of the day's rows)."""
    spans: dict[dt.date, Range] = {}
    for h in hours:
        lo, hi = spans.get(_day(h), (h, h + 1))
        spans[_day(h)] = (min(lo, h), max(hi, h + 1))
    return list(spans.values())


# One per database in this process, so that views share the background work; weak, so a
# closed engine takes its own with it.
_BY_ENGINE: weakref.WeakKeyDictionary[AsyncEngine, HourStats] = weakref.WeakKeyDictionary()


def hour_stats_for(engine: AsyncEngine) -> HourStats:
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = _BY_ENGINE[engine] = HourStats(engine)
    return found
