"""The databases released versions left behind (tests/fixtures/store, made by
scripts/freeze_store.py), restored into a real SQLite file or PostgreSQL database."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import MetaData, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.migrations import current_version, migrate

Rows = dict[str, list[dict[str, Any]]]

FIXTURES = Path(__file__).parents[1] / "fixtures" / "store"
TABLES = ("spend_log", "spend_daily", "budget_counters", "budget_reservations", "virtual_keys")


async def restore(url: str, version: str) -> None:
    """Load ``version``'s dump (e.g. "v10") into the empty database at ``url``."""
    if url.startswith("sqlite"):
        dump = (FIXTURES / f"{version}.sqlite.sql").read_text()
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.executescript(dump)
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute((FIXTURES / f"{version}.postgres.sql").read_text())
    finally:
        await conn.close()


async def snapshot(engine: AsyncEngine) -> Rows:
    """Every row of the tables the dumps have, as the database has them now (sorted)."""

    def read(sync: Any) -> Rows:
        meta = MetaData()
        meta.reflect(sync, only=TABLES)
        out = {}
        for name in TABLES:
            rows = [dict(r._mapping) for r in sync.execute(select(meta.tables[name]))]
            out[name] = sorted(rows, key=repr)
        return out

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def replay_spill(url: str, version: str, tmp_path: Path) -> int:
    """Start a sink on ``url`` with ``version``'s spill file left behind; returns how many
    records it wrote (the file is gone once they are all in)."""
    spill = tmp_path / "spill.jsonl"
    shutil.copy(FIXTURES / f"{version}.spill.jsonl", spill)
    sink = await SqlSink.open(url, spill_path=spill, interval_s=0.01)
    await sink.aclose()
    assert not spill.exists()
    return sink.written


async def upgrade(url: str, version: int, steps: list[int]) -> tuple[Rows, Rows, Rows]:
    """Migrate the restored database at ``url`` (schema ``version``), checking it applies
    ``steps`` and then nothing more; returns its rows before and after, and the columns of
    spend_log and spend_daily after."""
    engine = create_engine(url)
    try:
        assert await current_version(engine) == version
        before = await snapshot(engine)
        assert await migrate(engine) == steps
        assert await migrate(engine) == []
        after = await snapshot(engine)
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {t: inspect(c).get_columns(t) for t in ("spend_log", "spend_daily")}
            )
    finally:
        await engine.dispose()
    return before, after, columns


async def migrated_sink(url: str, tmp_path: Path) -> SqlSink:
    """A sink (its writer not started) on the database at ``url``, migrated to this version."""
    engine = create_engine(url)
    await migrate(engine)
    return SqlSink(engine, spill_path=tmp_path / "spill.jsonl")
