"""Filling ``spend_daily``'s cache-write columns in from ``spend_log``.

Migration 12 added ``cache_write_tokens`` and ``cache_write_1h_tokens`` to the rollup; its
existing rows start at 0. ``fill_cache_writes`` sets them to the log's sums for every rollup
row whose raw rows the log still has, in two portable statements (one grouped scan of the
log, then an UPDATE by primary key per row with writes): ``UPDATE ... FROM`` would need
SQLite 3.33, newer than some distributions ship (RHEL 8: 3.26). A row is filled only when
the log holds all its calls (as many rows as the rollup counted requests), so a day that
retention already dropped keeps 0 rather than a part of its writes. Setting, not adding,
makes it safe to run again, e.g. once a rolling upgrade is over (``docs/cost.md``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG

__all__ = ["fill_cache_writes"]

_KEY = ("day", "key_id", "team_id", "user_id", "model")


async def fill_cache_writes(conn: AsyncConnection, since: dt.date | None = None) -> None:
    """Set the rollup's cache writes (and their 1-hour part) to ``spend_log``'s sums, for the
    days since ``since`` (default: every day the log has)."""
    log = SPEND_LOG.c
    # the rollup's key: a NULL id is "" there. Grouped by these expressions, not by labels
    # (PostgreSQL would read a label named like a column as the raw column).
    key = [
        log.day,
        func.coalesce(log.key_id, ""),
        func.coalesce(log.team_id, ""),
        func.coalesce(log.user_id, ""),
        log.model,
    ]
    query = (
        select(
            *key,
            func.count(),
            func.sum(log.cache_write_tokens),
            func.sum(log.cache_write_1h_tokens),
        )
        .group_by(*key)
        .having(func.sum(log.cache_write_tokens) > 0)
    )
    if since is not None:
        query = query.where(log.day >= since)
    sums = (await conn.execute(query)).all()
    if not sums:
        return
    daily = SPEND_DAILY.c
    stmt = (
        update(SPEND_DAILY)
        .where(and_(*(daily[name] == bindparam(f"k_{name}") for name in _KEY)))
        .where(daily.requests == bindparam("k_calls"))  # the log still has every call
        .values(
            cache_write_tokens=bindparam("writes"), cache_write_1h_tokens=bindparam("writes_1h")
        )
    )
    params = [
        {
            **{f"k_{name}": value for name, value in zip(_KEY, row[:5], strict=True)},
            "k_calls": row[5],
            "writes": int(row[6]),
            "writes_1h": int(row[7]),
        }
        for row in sums
    ]
    await conn.execute(stmt, params)
