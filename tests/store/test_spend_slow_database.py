"""A database slower than the traffic, not down: the spend log's memory stays bounded by
``max_buffer`` (the rest waits in the WAL and is read back), and every record still lands.

Before, only a failed write let records go to the WAL: a database that kept answering, just
slower than requests came, kept every waiting record in memory (75,000 records, +65 MB per
100,000 requests in bench/gateway.py's RSS run)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_LOG
from tests.clock import wait_until

MAX_BUFFER = 200


async def slow_inserts(db_url: str) -> None:
    """Every spend_log row takes 2 ms more to insert: ~500 rows a second at most."""
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION slow_row() RETURNS trigger AS "
                "$$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER slow_row BEFORE INSERT ON spend_log "
                "FOR EACH ROW EXECUTE FUNCTION slow_row()"
            )
        )
    await engine.dispose()


# PostgreSQL only: a trigger slows its inserts from inside; SQLite has no way to
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_slow_database_costs_disk_not_memory(db_url: str, tmp_path: Path) -> None:
    sink = await SqlSink.open(
        db_url,
        wal_dir=tmp_path / "wal",
        max_buffer=MAX_BUFFER,
        batch_size=50,
        interval_s=0.01,
    )
    await slow_inserts(db_url)
    most = 0
    for n in range(100):  # 2,000 records at ~2,000 a second: four times what the database takes
        for i in range(20):
            sink.emit(UsageRecord(ts=time.time(), model="m", request_id=f"r{n}-{i}"))
        await asyncio.sleep(0.01)
        most = max(most, sink.held)
    await wait_until(lambda: sink.pending == 0, timeout_s=120)
    await sink.aclose()
    # while one batch of 50 is written (~0.1 s), ~200 more arrive: the bound is max_buffer
    # plus what comes meanwhile, not everything that waits (~1,500 by the end before)
    assert most <= MAX_BUFFER + 450, most
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        rows = await conn.scalar(select(func.count(func.distinct(SPEND_LOG.c.request_id))))
        total = await conn.scalar(select(func.count()).select_from(SPEND_LOG))
    await engine.dispose()
    assert (rows, total) == (2000, 2000)
