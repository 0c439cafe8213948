"""Schema migrations and day partitions on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatgate.server.keys import KeyStore
from chatgate.store.engine import create_engine
from chatgate.store.migrations import MIGRATIONS, current_version, migrate
from chatgate.store.partitions import drop_days_before, ensure_days, partitions
from chatgate.store.schema.console import CONSOLE_DAILY
from chatgate.store.schema.keys import VIRTUAL_KEYS
from chatgate.store.schema.spend import SPEND_LOG


async def test_migrations_apply_once_even_when_started_concurrently(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(e) for e in engines))
        assert sorted(v for r in results for v in r) == [m.version for m in MIGRATIONS]
        assert await current_version(engines[0]) == MIGRATIONS[-1].version
        assert await migrate(engines[0]) == []
        async with engines[0].connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            indexes = await conn.run_sync(
                lambda c: {i["name"] for i in inspect(c).get_indexes("spend_daily")}
            )
        assert {"spend_log", "spend_daily", "budget_counters", "schema_migrations"} <= tables
        assert {"ix_spend_daily_key_day", "ix_spend_daily_team_day"} <= indexes
    finally:
        for e in engines:
            await e.dispose()


def row(day: dt.date) -> dict[str, object]:
    return {"day": day, "ts": 0.0, "model": "m", "stream": False}


async def test_retention_drops_old_days(engine: AsyncEngine) -> None:
    days = [dt.date(2026, 11, d) for d in (1, 2, 3)]
    async with engine.begin() as conn:
        await ensure_days(conn, days)
        await conn.execute(SPEND_LOG.insert(), [row(d) for d in days for _ in range(2)])
    if engine.dialect.name == "postgresql":
        assert await partitions(engine) == [f"spend_log_p2026110{d}" for d in (1, 2, 3)]
        assert await drop_days_before(engine, dt.date(2026, 11, 3)) == 2
        assert await partitions(engine) == ["spend_log_p20261103"]
    else:
        assert await drop_days_before(engine, dt.date(2026, 11, 3)) == 4
    async with engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(SPEND_LOG))
    assert left == 2


async def test_17_clears_the_gateways_provider_model_deployments(db_url: str) -> None:
    engine = create_engine(db_url)
    day = dt.date(2026, 11, 1)
    written = {  # deployment, provider, served_model
        "gateway": ("openai/gpt-4o", "openai", "gpt-4o"),
        "gateway-nested": ("openrouter/anthropic/claude", "openrouter", "anthropic/claude"),
        "library": ("smart#0", "openai", "gpt-4o"),
        "configured-id": ("eu-4o", "azure", "eu-4o"),
        "none": (None, None, None),
    }
    try:
        await migrate(engine, tuple(m for m in MIGRATIONS if m.version < 17))
        async with engine.begin() as conn:
            await ensure_days(conn, [day])
            await conn.execute(
                SPEND_LOG.insert(),
                [
                    {**row(day), "model": name, "deployment": d, "provider": p, "served_model": s}
                    for name, (d, p, s) in written.items()
                ],
            )
        assert await migrate(engine, tuple(m for m in MIGRATIONS if m.version <= 17)) == [17]
        async with engine.connect() as conn:
            rows = dict(
                (await conn.execute(select(SPEND_LOG.c.model, SPEND_LOG.c.deployment))).all()
            )
    finally:
        await engine.dispose()
    assert rows == {
        "gateway": None,
        "gateway-nested": None,
        "library": "smart#0",
        "configured-id": "eu-4o",
        "none": None,
    }


async def test_18_adds_fallback_and_savings_and_recomputes_the_consoles_days(db_url: str) -> None:
    engine = create_engine(db_url)
    day = dt.date(2026, 11, 1)
    stats = {"day": day, "dim": "all", "name": "*", "computed_at": 0.0}
    stats |= dict.fromkeys(("requests", "errors", "cost_pico", "cache_hits", "retried"), 1)
    stats |= dict.fromkeys(("hit_tokens", "paid_tokens"), 1)
    try:
        await migrate(engine, tuple(m for m in MIGRATIONS if m.version < 18))
        async with engine.begin() as conn:
            await conn.execute(CONSOLE_DAILY.insert(), [stats])
        assert await migrate(engine, tuple(m for m in MIGRATIONS if m.version <= 18)) == [18]
        async with engine.connect() as conn:
            stored = await conn.scalar(select(func.count()).select_from(CONSOLE_DAILY))
            columns = {
                table: await conn.run_sync(
                    lambda c, t=table: {col["name"] for col in inspect(c).get_columns(t)}
                )
                for table in ("spend_log", "spend_daily", "console_daily")
            }
    finally:
        await engine.dispose()
    assert stored == 0  # computed again, with the new numbers, when next viewed
    savings = {"cache_saved_pico", "prompt_saved_pico", "batch_saved_pico"}
    assert {"fallback", *savings} <= columns["spend_log"]
    assert savings <= columns["spend_daily"]
    assert {"fallbacks", "tier_saved_pico", *savings} <= columns["console_daily"]


@contextlib.asynccontextmanager
async def before(
    engine: AsyncEngine, version: int, table: str, column: str
) -> AsyncIterator[AsyncConnection]:
    """A database migrated up to ``version`` (which adds ``table.column``), as it was then:
    the earlier step that created the table made today's, so the column is taken out."""
    await migrate(engine, tuple(m for m in MIGRATIONS if m.version < version))
    async with engine.begin() as conn:
        present = await conn.run_sync(
            lambda c: {col["name"] for col in inspect(c).get_columns(table)}
        )
        if column in present:
            await conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        yield conn


async def test_19_adds_the_attempt_log_to_a_spend_log_that_has_rows(db_url: str) -> None:
    engine = create_engine(db_url)
    day = dt.date(2026, 11, 1)
    try:
        async with before(engine, 19, "spend_log", "attempt_log") as conn:
            await ensure_days(conn, [day])
            await conn.execute(SPEND_LOG.insert().values(row(day)))
        assert 19 in await migrate(engine)
        async with engine.connect() as conn:
            stored = (await conn.execute(select(SPEND_LOG.c.model, SPEND_LOG.c.attempt_log))).all()
    finally:
        await engine.dispose()
    assert [s for _, s in stored] == [None]  # an older row: no attempts recorded


async def test_21_adds_tags_to_the_virtual_keys_that_exist(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with before(engine, 21, "virtual_keys", "tags") as conn:
            old_key = {"key_id": "key_old", "secret_hash": "0" * 64, "display": "sk-cg-…old"}
            stamps = {"created_at": 1.0, "updated_at": 1.0}
            await conn.execute(
                VIRTUAL_KEYS.insert().values(**old_key, **stamps, models=[], metadata={})
            )
        assert 21 in await migrate(engine)
        keys = KeyStore(engine)
        old = await keys.get("key_old")
        _, new = await keys.create(name="new", tags=["team-search"])
    finally:
        await engine.dispose()
    assert old is not None
    assert old.tags == ()  # an older key: no tags
    assert new.tags == ("team-search",)
