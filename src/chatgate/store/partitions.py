"""Day partitions of ``spend_log`` on PostgreSQL, and retention for both databases.

A row's partition must exist before it is inserted; the spend writer calls
``ensure_days`` for each day it has not seen yet (idempotent, cheap). Retention drops whole
partitions on PostgreSQL (instant, no vacuum) and deletes rows on SQLite. The daily rollup
is kept: it is small and reports read it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatgate.store.schema.spend import SPEND_LOG

__all__ = ["drop_days_before", "ensure_days", "partition_name", "partitions"]


def partition_name(day: dt.date) -> str:
    return f"spend_log_p{day:%Y%m%d}"


async def ensure_days(conn: AsyncConnection, days: Iterable[dt.date]) -> None:
    """Create the partitions for ``days`` if missing (PostgreSQL only; no-op on SQLite)."""
    if conn.dialect.name != "postgresql":
        return
    for day in sorted(set(days)):
        nxt = day + dt.timedelta(days=1)
        await conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF spend_log "
                f"FOR VALUES FROM ('{day.isoformat()}') TO ('{nxt.isoformat()}')"
            )
        )


async def partitions(engine: AsyncEngine) -> list[str]:
    """The names of spend_log's partitions (PostgreSQL), oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'spend_log' "
                "ORDER BY c.relname"
            )
        )
        return [row[0] for row in rows]


async def drop_days_before(engine: AsyncEngine, cutoff: dt.date) -> int:
    """Retention: remove spend_log rows older than ``cutoff``. Returns partitions dropped
    (PostgreSQL) or rows deleted (SQLite)."""
    if engine.dialect.name != "postgresql":
        async with engine.begin() as conn:
            result = await conn.execute(delete(SPEND_LOG).where(SPEND_LOG.c.day < cutoff))
            return int(result.rowcount)
    dropped = 0
    for name in await partitions(engine):
        day = dt.datetime.strptime(name.removeprefix("spend_log_p"), "%Y%m%d").date()
        if day < cutoff:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            dropped += 1
    return dropped
