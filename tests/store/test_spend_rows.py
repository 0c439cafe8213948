"""The spend log's rows as the driver gets them: every field read back as written, on SQLite
and PostgreSQL, for a batch whose records differ in which columns are NULL; and on SQLite no
value that ``sqlite3`` must adapt (a ``None`` or a ``date``: each costs a failed or a Python
adapter call in the driver's thread)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from chatgate.cost.spend_rows import COLUMNS, utc_day
from chatgate.cost.spend_sql import SpendWriter
from chatgate.cost.usage import UsageRecord
from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG
from tests.store.spend_records import FULL

DEC_31 = FULL.ts  # 2026-12-31 23:59:59.5 UTC: the next record is on another day


def _records() -> list[UsageRecord]:
    return [
        UsageRecord(ts=DEC_31, model="smart", request_id="r1", record_id="id-1"),
        dataclasses.replace(FULL, ts=DEC_31 + 1, error=None, fallback=True),
        UsageRecord(
            ts=DEC_31 + 2,
            model="smart",
            key_id="k1",
            error="RateLimitError",
            fallback=False,
            record_id="id-3",
        ),
        UsageRecord(ts=DEC_31 + 3, model="smart", key_id="k1", cost=Decimal(0), record_id="id-4"),
    ]


def _expected(r: UsageRecord) -> dict[str, Any]:
    pico = 10**12

    def to_pico(value: Decimal | None) -> int | None:
        return None if value is None else int((value * pico).to_integral_value("ROUND_CEILING"))

    return {
        **{c: getattr(r, c) for c in COLUMNS if hasattr(r, c)},
        "day": r.day,
        "tags": ",".join(r.tags) or None,
        "cost_pico": to_pico(r.cost),
        "saved_pico": to_pico(r.saved),
        "cache_saved_pico": to_pico(r.cache_saved),
        "prompt_saved_pico": to_pico(r.prompt_saved),
        "batch_saved_pico": to_pico(r.batch_saved),
    }


async def test_every_field_reads_back_as_written(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    records = _records()
    assert await SpendWriter(engine).write(records) == 4
    async with engine.connect() as conn:
        rows = (await conn.execute(select(SPEND_LOG).order_by(SPEND_LOG.c.ts))).mappings().all()
        by_day = select(SPEND_DAILY).order_by(SPEND_DAILY.c.day, SPEND_DAILY.c.team_id)
        daily = (await conn.execute(by_day)).all()
    await engine.dispose()
    assert [dict(row) for row in rows] == [_expected(r) for r in records]
    sums = [(d.day, d.team_id, d.requests, d.errors, d.unpriced, d.cost_pico) for d in daily]
    assert sums == [
        (dt.date(2026, 12, 31), "", 1, 0, 1, 0),
        (dt.date(2027, 1, 1), "", 2, 1, 0, 0),
        (dt.date(2027, 1, 1), "t1", 1, 0, 0, 1_234_500),
    ]
    assert (daily[2].cached_tokens, daily[2].saved_pico, daily[2].batch_saved_pico) == (
        40,
        500_000_000_000,
        3_000_000,
    )


@pytest.fixture
def adaptations() -> Iterator[list[object]]:
    """Every None and date that sqlite3 adapts while the test runs (process-wide)."""
    seen: list[object] = []
    date_key = (dt.date, sqlite3.PrepareProtocol)
    none_key = (type(None), sqlite3.PrepareProtocol)
    date_adapter = sqlite3.adapters.get(date_key)

    def none(value: None) -> None:
        seen.append(value)

    def date(value: dt.date) -> str:
        seen.append(value)
        return value.isoformat()

    sqlite3.register_adapter(dt.date, date)
    sqlite3.register_adapter(type(None), none)
    try:
        yield seen
    finally:
        del sqlite3.adapters[none_key]
        if date_adapter is None:
            del sqlite3.adapters[date_key]
        else:
            sqlite3.adapters[date_key] = date_adapter


async def test_sqlite_binds_no_null_or_date(sqlite_url: str, adaptations: list[object]) -> None:
    engine = create_engine(sqlite_url)
    await migrate(engine)
    writer = SpendWriter(engine)
    adaptations.clear()
    assert await writer.write(_records()) == 4
    assert adaptations == []
    assert await writer.write([UsageRecord(ts=DEC_31 + 9, model="smart")]) == 1
    assert adaptations == []
    async with engine.connect() as conn:
        last = (
            await conn.execute(
                select(SPEND_LOG.c.day, SPEND_LOG.c.cost_pico).order_by(SPEND_LOG.c.ts.desc())
            )
        ).first()
    await engine.dispose()
    assert tuple(last or ()) == (dt.date(2027, 1, 1), None)


def test_utc_day_is_the_records_day() -> None:
    for ts in (0.0, -0.5, DEC_31, DEC_31 + 0.5, 1.7e9, 4102444799.999):
        assert utc_day(ts) == UsageRecord(ts=ts, model="m").day
