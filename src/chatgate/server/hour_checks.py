"""Which stored hours are still true of the spend log: the check for late records.

A stored hour counted ``n`` spend-log rows; it is still true while the log holds no more than
``n`` rows for it (rows are only ever added, and removed only by retention, whole days). The
hours of a closed day whose 24 hours are all stored are checked at once, against the day's
row count (the ``day`` index, about half the work of counting by hour); any other hour, or a
day whose count is not the sum of its hours' (a late record, or a day dropped by retention),
is checked against its own count, from the ``ts`` index.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.server.overview_hours import log_counts
from chatgate.store.schema.console import CONSOLE_HOURLY
from chatgate.store.schema.spend import SPEND_LOG

__all__ = ["still_true"]

T = CONSOLE_HOURLY.c
_WHOLE_DAY_FROM = 12  # a day is counted whole when the window has at least this many of its hours


def _day(hour: int) -> dt.date:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).date()


async def _day_totals(
    conn: AsyncConnection, days: list[int]
) -> tuple[dict[int, dict[int, int]], dict[int, int]]:
    """For each day (its number since the epoch): its stored hours' counts, and its rows."""
    stored: dict[int, dict[int, int]] = defaultdict(dict)
    hours = (T.hour >= days[0] * 24) & (T.hour < (days[-1] + 1) * 24)
    query = select(T.hour, T.requests).where(hours, T.dim == "all")
    for hour, n in await conn.execute(query):
        stored[hour // 24][hour] = n
    c = SPEND_LOG.c
    dates = [_day(d * 24) for d in days]
    count = select(c.day, func.count()).where(c.day.in_(dates)).group_by(c.day)
    rows = {d: 0 for d in days}
    for date, n in await conn.execute(count):
        rows[(date - dt.date(1970, 1, 1)).days] = n
    return stored, rows


async def still_true(
    conn: AsyncConnection, computed: Mapping[int, int], first: int, last: int, closed_end: int
) -> tuple[set[int], list[int]]:
    """The hours of [first, last) whose stored statistics (``computed``: hour -> rows counted)
    are still true of the log, and the hours of those closed days that have none stored
    (computed with them, so that the day is checked whole next time)."""
    per_day: dict[int, list[int]] = defaultdict(list)
    for h in range(first, last):
        per_day[h // 24].append(h)
    whole = [
        d for d, hs in per_day.items() if (d + 1) * 24 <= closed_end and len(hs) >= _WHOLE_DAY_FROM
    ]
    good: set[int] = set()
    missing: list[int] = []
    if whole:
        stored, rows = await _day_totals(conn, sorted(whole))
        for d in whole:
            same = all(stored[d].get(h) == computed.get(h) for h in per_day[d])
            if same and len(stored[d]) == 24 and sum(stored[d].values()) == rows[d]:
                good.update(per_day[d])
            else:
                missing += [h for h in range(d * 24, (d + 1) * 24) if h not in stored[d]]
    for run in _runs([h for h in range(first, last) if h not in good]):
        counts = await log_counts(conn, run[0] * 3600.0, (run[-1] + 1) * 3600.0)
        good.update(h for h in run if h in computed and counts.get(h, 0) <= computed[h])
    return good, [h for h in missing if not first <= h < last]


def _runs(hours: list[int]) -> list[list[int]]:
    """Sorted hours as runs of consecutive ones (a count each)."""
    runs: list[list[int]] = []
    for h in hours:
        if runs and runs[-1][-1] == h - 1:
            runs[-1].append(h)
        else:
            runs.append([h])
    return runs
