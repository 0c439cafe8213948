"""The daily rollup's token columns on real SQLite and PostgreSQL: the writer's upsert keeps
them equal to the spend log's sums, and ``fill_cache_writes`` sets the cache writes from the
log (what migration 12 does for rows written before the columns existed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.rollup import fill_cache_writes
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG

NOV_21 = 1795262400.0  # 2026-11-21 09:20 UTC
TOKENS = ("prompt_tokens", "cached_tokens", "cache_write_tokens", "cache_write_1h_tokens")
WRITES = ("cache_write_tokens", "cache_write_1h_tokens")


def record(n: int) -> UsageRecord:
    """Two days, three keys (one of them none), two models; every third call writes no cache."""
    written = 0 if n % 3 == 0 else 100 * n
    return UsageRecord(
        ts=NOV_21 + (n % 2) * 86_400 + n,
        model="sonnet" if n % 4 < 2 else "haiku",
        key_id=None if n % 3 == 2 else f"key{n % 3}",
        team_id="red",
        prompt_tokens=10_000 + n,
        completion_tokens=7,
        cached_tokens=50 * n,
        cache_write_tokens=written,
        cache_write_1h_tokens=written // 4 if n % 5 else 0,
        cost=Decimal("0.001"),
    )


@pytest.fixture
async def engine(db_url: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A database holding the 40 records."""
    sink = await SqlSink.open(db_url, spill_path=tmp_path / "spill.jsonl", batch_size=7)
    for n in range(40):
        sink.emit(record(n))
    await sink.aclose()  # 6 batches: most rollup rows are written once, then added to
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


async def rollup(engine: AsyncEngine, *names: str) -> dict[tuple[Any, ...], tuple[int, ...]]:
    daily = SPEND_DAILY.c
    key = (daily.day, daily.key_id, daily.team_id, daily.user_id, daily.model)
    async with engine.connect() as conn:
        rows = await conn.execute(select(*key, *(daily[n] for n in names)))
        return {tuple(r[:5]): tuple(r[5:]) for r in rows}


async def log_sums(engine: AsyncEngine, *names: str) -> dict[tuple[Any, ...], tuple[int, ...]]:
    log = SPEND_LOG.c
    key = (
        log.day,
        func.coalesce(log.key_id, ""),
        func.coalesce(log.team_id, ""),
        func.coalesce(log.user_id, ""),
        log.model,
    )
    async with engine.connect() as conn:
        rows = await conn.execute(select(*key, *(func.sum(log[n]) for n in names)).group_by(*key))
        return {tuple(r[:5]): tuple(map(int, r[5:])) for r in rows}


async def test_the_upsert_keeps_every_token_column_equal_to_the_log_sums(
    engine: AsyncEngine,
) -> None:
    daily = await rollup(engine, *TOKENS)
    assert daily == await log_sums(engine, *TOKENS)
    assert len(daily) == 12  # 2 days x 3 keys x 2 models
    assert sum(row[2] for row in daily.values()) == sum(100 * n for n in range(40) if n % 3)
    assert sum(row[3] for row in daily.values()) > 0


async def test_fill_cache_writes_sets_them_from_the_log_and_can_run_again(
    engine: AsyncEngine,
) -> None:
    expected = await rollup(engine, *WRITES)
    async with engine.begin() as conn:  # as migration 12 finds a v11 rollup: no writes
        await conn.execute(update(SPEND_DAILY).values(dict.fromkeys(WRITES, 0)))
        await fill_cache_writes(conn, since=dt.date(2026, 11, 22))
    nov_22 = {k: v for k, v in expected.items() if k[0] == dt.date(2026, 11, 22)}
    assert await rollup(engine, *WRITES) == {k: nov_22.get(k, (0, 0)) for k in expected}
    for _ in range(2):
        async with engine.begin() as conn:
            await fill_cache_writes(conn)
        assert await rollup(engine, *WRITES) == expected


async def test_a_row_whose_calls_the_log_no_longer_all_has_is_not_filled(
    engine: AsyncEngine,
) -> None:
    expected = await rollup(engine, *WRITES)
    gone = (dt.date(2026, 11, 22), "key1", "red", "", "sonnet")
    assert expected[gone] != (0, 0)
    async with engine.begin() as conn:
        await conn.execute(update(SPEND_DAILY).values(dict.fromkeys(WRITES, 0)))
        await conn.execute(delete(SPEND_LOG).where(SPEND_LOG.c.ts == NOV_21 + 86_400 + 1))
        await fill_cache_writes(conn)
    # a part of its writes would understate them: the row keeps 0, like a dropped day
    assert await rollup(engine, *WRITES) == {**expected, gone: (0, 0)}
