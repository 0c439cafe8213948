"""A day's Overview statistics on SQLite and PostgreSQL: a settled day's are computed once
and stored; a day still open is computed again after a minute; what a view has no time for
is computed in the background; percentiles and the top subjects."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.server.day_stats import DayStats
from chatgate.server.log_filters import Window
from chatgate.server.overview_days import TOP_PER_DAY
from chatgate.server.overview_hours import TOP, hour_rows, hour_series
from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate
from chatgate.store.partitions import ensure_days
from chatgate.store.schema.console import CONSOLE_DAILY
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG

pytestmark = pytest.mark.parametrize(
    "database", ["sqlite", "postgresql"], indirect=True, scope="module"
)
NOW = dt.datetime(2026, 12, 5, 14, 0, tzinfo=dt.UTC).timestamp()
PAST = dt.date(2026, 12, 1)
TODAY = dt.date(2026, 12, 5)


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database)
    await migrate(engine)
    async with engine.begin() as conn:
        await ensure_days(conn, [PAST, TODAY, dt.date(2026, 12, 2), dt.date(2026, 12, 3)])
    yield engine
    await engine.dispose()


def call(day: dt.date, n: int, **fields: Any) -> dict[str, Any]:
    ts = dt.datetime.combine(day, dt.time(12), dt.UTC).timestamp() + n
    row = {
        "day": day, "ts": ts, "model": "fast", "stream": False, "prompt_tokens": 10,
        "completion_tokens": 5, "cached_tokens": 0, "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0, "reasoning_tokens": 0, "attempts": 1, "cache_hit": False,
        "cost_pico": 1000, "latency_ms": float(n), "key_id": f"k{n % 3}", "error": None,
        "ttft_ms": None,
    }  # fmt: skip
    return {**row, **fields}


async def days_stats(
    engine: AsyncEngine, days: list[dt.date], dims: list[str], now: float, **options: Any
) -> list[dict[str, Any]]:
    rows, pending = await DayStats(engine, clock=lambda: now, **options).rows(days, ["all", *dims])
    assert pending == []
    return [r for r in rows if r["dim"] in dims]


async def add(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(SPEND_LOG), rows)


async def test_a_settled_day_is_computed_once_and_stored(engine: AsyncEngine) -> None:
    rows = [call(PAST, n) for n in range(1, 101)]  # latencies 1..100 ms
    rows[0] |= {"error": "RateLimitError", "cost_pico": None}
    rows[1] |= {"cache_hit": True, "cost_pico": 0}
    rows[2] |= {"attempts": 2, "ttft_ms": 7.0}
    await add(engine, rows)
    (whole,) = [r for r in await days_stats(engine, [PAST], ["all"], NOW) if r["dim"] == "all"]
    assert (whole["requests"], whole["errors"], whole["cache_hits"], whole["retried"]) == (
        100, 1, 1, 1,
    )  # fmt: skip
    assert whole["cost_pico"] == 98 * 1000
    assert whole["latency_p50_ms"] == pytest.approx(50.5)
    assert whole["latency_p95_ms"] == pytest.approx(95.05)
    assert whole["ttft_p50_ms"] == 7.0
    async with engine.connect() as conn:
        stored = (
            await conn.execute(select(func.count()).where(CONSOLE_DAILY.c.day == PAST))
        ).scalar()
    assert stored
    await add(engine, [call(PAST, 500)])  # later than SETTLE_S after the day: not counted
    again = await days_stats(engine, [PAST], ["all"], NOW)
    assert [r["requests"] for r in again if r["dim"] == "all"] == [100]


async def test_an_open_day_is_fresh_on_each_view_and_never_stored(engine: AsyncEngine) -> None:
    stats = DayStats(engine, clock=lambda: NOW)
    await add(engine, [call(TODAY, n) for n in range(3)])
    first, _ = await stats.rows([TODAY], ["all"])
    await add(engine, [call(TODAY, 10)])
    second, _ = await stats.rows([TODAY], ["all"])
    assert [r["requests"] for r in first] == [3]
    assert [r["requests"] for r in second] == [4]
    busy = DayStats(engine, clock=lambda: NOW, budget_s=0)
    assert await busy.rows([TODAY], ["all"]) == ([], [TODAY])  # nothing yet: to compute
    await busy.idle()
    await add(engine, [call(TODAY, 11)])
    rows, pending = await busy.rows([TODAY], ["all"])
    assert [r["requests"] for r in rows] == [4]  # too slow for a view: shown as it was
    assert pending == []
    async with engine.connect() as conn:
        stored = (
            await conn.execute(select(func.count()).where(CONSOLE_DAILY.c.day == TODAY))
        ).scalar()
    assert stored == 0


async def test_the_most_spent_subjects_and_the_rest_as_other(engine: AsyncEngine) -> None:
    day = dt.date(2026, 12, 2)
    n = TOP_PER_DAY + 5
    await add(engine, [call(day, i, key_id=f"key-{i}", cost_pico=i + 1) for i in range(n)])
    daily = [
        {"day": day, "key_id": f"key-{i}", "team_id": "", "user_id": "", "model": "fast",
         "requests": 1, "errors": 0, "prompt_tokens": 10, "completion_tokens": 5,
         "cached_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0,
         "cost_pico": i + 1, "unpriced": 0}
        for i in range(n)
    ]  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(insert(SPEND_DAILY), daily)
    keys = {r["name"]: r["cost_pico"] for r in await days_stats(engine, [day], ["key"], NOW)}
    assert len(keys) == TOP_PER_DAY + 1
    assert keys["key-104"] == 105  # the most spent
    assert "key-0" not in keys
    assert keys["(other)"] == sum(range(1, 6))  # the five least spent, together


async def test_days_a_view_has_no_time_for_are_computed_in_the_background(
    engine: AsyncEngine,
) -> None:
    days = [dt.date(2026, 11, d) for d in range(20, 25)]
    stats = DayStats(engine, clock=lambda: NOW, budget_s=0)
    first, pending = await stats.rows(days, ["all"])
    assert first == []  # no time at all: every day is left to the background
    assert pending == days
    await stats.idle()
    later, pending = await DayStats(engine, clock=lambda: NOW, budget_s=0).rows(days, ["all"])
    assert pending == []  # stored by the background task, read by another process
    assert sorted(r["day"] for r in later) == days


async def test_tags_count_under_each_fallbacks_and_savings_by_lever(engine: AsyncEngine) -> None:
    day = dt.date(2026, 12, 3)
    extra = {"tags": None, "fallback": None, "saved_pico": None, "cache_saved_pico": None}
    extra |= {"prompt_saved_pico": None, "batch_saved_pico": None}
    rows = [
        call(day, 1, **extra | {"tags": "a,b", "cost_pico": 100}),
        call(day, 2, **extra | {"tags": "a,a", "cost_pico": 10, "fallback": True}),  # once
        call(day, 3, **extra | {"cost_pico": 1, "fallback": False, "saved_pico": 7}),
        call(day, 4, **extra | {"cache_hit": True, "cost_pico": 0, "cache_saved_pico": 500}),
        call(day, 5, **extra | {"prompt_saved_pico": 30, "batch_saved_pico": 4, "tags": "b"}),
    ]
    await add(engine, rows)
    for _ in range(2):  # computed, then read back as stored
        stats = await days_stats(engine, [day], ["all", "tag"], NOW)
        tags = {r["name"]: (r["cost_pico"], r["requests"]) for r in stats if r["dim"] == "tag"}
        (whole,) = [r for r in stats if r["dim"] == "all"]
        assert tags == {"a": (110, 2), "b": (100 + 1000, 2), "(none)": (1 + 0, 2)}
        assert whole["fallbacks"] == 1
        assert (whole["tier_saved_pico"], whole["cache_saved_pico"]) == (7, 500)
        assert (whole["prompt_saved_pico"], whole["batch_saved_pico"]) == (30, 4)


async def test_hour_buckets_by_tag_keep_the_eight_most_spent_and_the_rest(
    engine: AsyncEngine,
) -> None:
    day = dt.date(2026, 12, 3)
    noon = dt.datetime.combine(day, dt.time(12), dt.UTC).timestamp()
    extra = {"tags": None, "fallback": None, "saved_pico": None, "cache_saved_pico": None}
    extra |= {"prompt_saved_pico": None, "batch_saved_pico": None}
    # tag-0 .. tag-9 cost 1000 x (n + 1) each, at 14:00; "shared" rides along with tag-0
    rows = [
        call(day, 7200 + n, **extra | {"tags": f"tag-{n}", "cost_pico": 1000 * (n + 1)})
        for n in range(10)
    ]
    rows[0]["tags"] = "tag-0,shared"
    await add(engine, rows)
    span = Window(noon + 7000, noon + 7400)
    async with engine.connect() as conn:
        rows = await hour_rows(conn, span.since, span.until, ["tag"], None)
    spend, _, _ = hour_series(rows, "tag", int(span.since // 3600), 2)  # 13:00 and 14:00
    series = {s["name"]: s["values"][1] for s in spend if s["values"][0] == 0}
    assert list(series)[:2] == ["tag-9", "tag-8"]
    assert len(series) == TOP + 1
    # the three least spent together: tag-1, and tag-0 and "shared" (one call, under each)
    assert series["(other)"] == pytest.approx((2000 + 1000 + 1000) * 1e-12)
    assert series["tag-2"] == pytest.approx(3000e-12)
