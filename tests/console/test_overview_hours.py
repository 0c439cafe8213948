"""The Overview's hour buckets on SQLite and PostgreSQL: closed hours are computed once and
stored, the rest read from the log; the chart is the same with the stored hours as without;
a late record makes its hour computed again; processes storing the same hours take turns;
retention keeps the stored hours, as it keeps the days."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.server.hour_stats import HourStats, store
from chatgate.server.log_filters import Window
from chatgate.server.overview_hours import BY, TOP, hour_series
from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate
from chatgate.store.partitions import drop_days_before, ensure_days
from chatgate.store.schema.console import CONSOLE_HOURLY
from chatgate.store.schema.spend import SPEND_LOG

pytestmark = pytest.mark.parametrize(
    "database", ["sqlite", "postgresql"], indirect=True, scope="module"
)
NOW = dt.datetime(2026, 12, 5, 14, 25, 10, tzinfo=dt.UTC).timestamp()
H = 3600
WINDOW = Window(NOW - 71 * H - 1234.5, NOW)  # neither edge on the hour
NEVER = 1e12  # a settle_s no hour is past: every hour read from the log, nothing stored


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database)
    await migrate(engine)
    first = dt.date(2026, 11, 25)
    async with engine.begin() as conn:
        await ensure_days(conn, [first + dt.timedelta(days=d) for d in range(12)])
        await conn.execute(CONSOLE_HOURLY.delete())
        await conn.execute(SPEND_LOG.delete())
    yield engine
    await engine.dispose()


def call(ts: float, **fields: Any) -> dict[str, Any]:
    row = {
        "day": dt.datetime.fromtimestamp(ts, dt.UTC).date(), "ts": ts, "model": "fast",
        "stream": False, "prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 0,
        "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 0,
        "attempts": 1, "cache_hit": False, "cost_pico": 1000, "latency_ms": 5.0,
        "ttft_ms": None, "error": None, "key_id": "k", "team_id": None, "user_id": None,
        "tags": None, "fallback": None, "saved_pico": None, "cache_saved_pico": None,
        "prompt_saved_pico": None, "batch_saved_pico": None,
    }  # fmt: skip
    return {**row, **fields}


def traffic(n: int, since: float, until: float, seed: int = 3) -> list[dict[str, Any]]:
    """``n`` calls spread over [since, until): a dozen subjects of every dimension (more than
    the chart stacks), distinct costs, errors, hits, retries, fallbacks and savings."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        error = rng.random() < 0.05
        tags = ",".join(rng.sample([f"tag-{t}" for t in range(12)], rng.randrange(3)))
        rows.append(
            call(
                since + (until - since) * rng.random(),
                model=f"model-{rng.randrange(11)}",
                key_id=f"key-{rng.randrange(13)}",
                team_id=rng.choice([None, *(f"team-{t}" for t in range(10))]),
                user_id=f"user-{rng.randrange(12)}",
                tags=tags or None,
                error="RateLimitError" if error else None,
                cost_pico=None if error else 1000 * i + 7,
                cache_hit=not error and rng.random() < 0.1,
                attempts=rng.choice([1, 1, 1, 2]),
                fallback=rng.choice([None, False, True]),
                latency_ms=rng.lognormvariate(5, 0.7),
                ttft_ms=rng.choice([None, rng.random() * 300]),
                saved_pico=rng.choice([None, 11 * i]),
                prompt_saved_pico=rng.choice([None, 3 * i]),
            )
        )
    return rows


async def add(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(SPEND_LOG), rows)


async def view(stats: HourStats, span: Window, by: str) -> tuple[Any, list[dt.date]]:
    rows, pending = await stats.rows(span, by)
    n = int((span.until - 1e-6) // H) - int(span.since // H) + 1
    return hour_series(rows, by, int(span.since // H), n), pending


async def stored_hours(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        query = select(CONSOLE_HOURLY.c.hour).where(CONSOLE_HOURLY.c.dim == "all")
        return sorted((await conn.execute(query)).scalars())


async def test_the_chart_is_the_same_from_stored_hours_as_from_the_log(
    engine: AsyncEngine,
) -> None:
    await add(engine, traffic(3000, WINDOW.since - 2 * H, NOW + H))
    first = HourStats(engine, clock=lambda: NOW)
    for by in BY:
        await first.rows(WINDOW, by)
    await first.idle()
    closed = list(range(int(WINDOW.since // H) + 1, int(NOW // H)))  # 14:00 still open
    assert await stored_hours(engine) == closed
    for by in BY:
        live, _ = await view(HourStats(engine, clock=lambda: NOW, settle_s=NEVER), WINDOW, by)
        # another process, on what the first one stored
        rolled, pending = await view(HourStats(engine, clock=lambda: NOW), WINDOW, by)
        assert pending == []
        assert rolled == live, by
        spend, counts, _ = live
        assert len(spend) == TOP + 1  # the eight most spent and "(other)"
        assert sum(counts["requests"]) == sum(1 for r in await window_rows(engine))
    assert await stored_hours(engine) == closed  # read, not computed again


async def window_rows(engine: AsyncEngine) -> list[Any]:
    c = SPEND_LOG.c
    query = select(c.ts).where(c.ts >= WINDOW.since, c.ts < WINDOW.until)
    async with engine.connect() as conn:
        return list(await conn.execute(query))


async def test_a_late_record_makes_its_closed_hour_computed_again(engine: AsyncEngine) -> None:
    span = Window(NOW - 5 * H - 60, NOW)
    await add(engine, traffic(200, span.since, NOW))
    stats = HourStats(engine, clock=lambda: NOW)
    await view(stats, span, "model")
    await stats.idle()
    before, _ = await view(stats, span, "model")
    hour = int(NOW // H) - 3  # 11:00, closed and stored
    assert hour in await stored_hours(engine)
    # records of 11:00 and 13:00 written late (a spend file replayed after a crash)
    await add(engine, [call(hour * H + 10, model="replayed", cost_pico=5 * 10**9)])
    await add(engine, [call(hour * H + 2 * H + 10, model="replayed", cost_pico=1)])
    busy = HourStats(engine, clock=lambda: NOW, budget_s=0)
    (spend, counts, _), pending = await view(busy, span, "model")
    i = hour - int(span.since // H)
    assert pending == [dt.date(2026, 12, 5)]  # being computed: never its stale numbers
    assert counts["requests"][i] == 0
    await busy.idle()
    after, pending = await view(HourStats(engine, clock=lambda: NOW), span, "model")
    assert pending == []
    spend, counts, _ = after
    assert counts["requests"][i] == before[1]["requests"][i] + 1
    assert counts["requests"][i + 1] == before[1]["requests"][i + 1]  # 12:00, stored, once
    assert {s["name"]: s["values"][i] for s in spend}["replayed"] == pytest.approx(0.005)
    live, _ = await view(HourStats(engine, clock=lambda: NOW, settle_s=NEVER), span, "model")
    assert after == live
    # again, this time the view waiting for the computation: 12:00 counted once still
    await add(engine, [call(hour * H + 20, cost_pico=3), call(hour * H + 2 * H + 20)])
    again, pending = await view(HourStats(engine, clock=lambda: NOW, budget_s=30), span, "model")
    assert pending == []
    live, _ = await view(HourStats(engine, clock=lambda: NOW, settle_s=NEVER), span, "model")
    assert again == live


async def test_a_late_record_in_a_closed_day_checked_whole_is_seen(engine: AsyncEngine) -> None:
    await add(engine, traffic(1500, WINDOW.since - 2 * H, NOW))
    stats = HourStats(engine, clock=lambda: NOW)
    await view(stats, WINDOW, "tag")
    await stats.idle()
    dec3 = int(dt.datetime(2026, 12, 3, tzinfo=dt.UTC).timestamp()) // H
    assert set(range(dec3, dec3 + 24)) <= set(await stored_hours(engine))  # the whole day
    before, pending = await view(HourStats(engine, clock=lambda: NOW, budget_s=0), WINDOW, "tag")
    assert pending == []  # every stored hour still true: nothing to compute
    late = dec3 + 10
    await add(engine, [call(late * H + 59, tags="late", cost_pico=7 * 10**9)])
    busy = HourStats(engine, clock=lambda: NOW, budget_s=0)
    (_, counts, _), pending = await view(busy, WINDOW, "tag")
    i = late - int(WINDOW.since // H)
    assert pending == [dt.date(2026, 12, 3)]
    assert counts["requests"][i] == 0  # being computed again: never its old numbers
    await busy.idle()
    (spend, counts, _), pending = await view(busy, WINDOW, "tag")
    assert pending == []
    assert counts["requests"][i] == before[1]["requests"][i] + 1
    assert {s["name"]: s["values"][i] for s in spend}["late"] == pytest.approx(0.007)


async def test_hours_not_closed_are_read_from_the_log_and_never_stored(
    engine: AsyncEngine,
) -> None:
    now = dt.datetime(2026, 12, 5, 14, 3, tzinfo=dt.UTC).timestamp()  # 13:00 ended 3 min ago
    span = Window(now - 2 * H, now)
    stats = HourStats(engine, clock=lambda: now)
    await add(engine, [call(now - 30 * 60), call(now - 60)])
    (_, counts, _), _ = await view(stats, span, "key")
    await stats.idle()
    assert counts["requests"] == [0, 1, 1]  # 12:03-13:00, 13:00 (not settled), 14:00
    assert await stored_hours(engine) == []
    await add(engine, [call(now - 20 * 60), call(now - 5)])
    (_, counts, _), _ = await view(stats, span, "key")
    assert counts["requests"] == [0, 2, 2]


async def test_processes_storing_the_same_hours_take_turns(
    engine: AsyncEngine, database: str
) -> None:
    span = Window(NOW - 30 * H, NOW)
    await add(engine, traffic(500, span.since, NOW))
    others = [create_engine(database) for _ in range(3)]
    try:
        views = [HourStats(e, clock=lambda: NOW, budget_s=0) for e in [engine, *others]]
        await asyncio.gather(*(v.rows(span, "tag") for v in views))
        await asyncio.gather(*(v.idle() for v in views))
        hours = (int(NOW // H) - 20, int(NOW // H) - 8)
        a = [{"hour": h, "dim": "all", "name": "*", **zeros(h % 3)} for h in range(*hours)]
        b = [{**r, "requests": 7} for r in a] + [
            {"hour": h, "dim": "tag", "name": "b", **zeros(1)} for h in range(*hours)
        ]
        writes = [store(e, hours, a if i % 2 else b, NOW) for i, e in enumerate(others * 4)]
        await asyncio.gather(*writes)
        async with engine.connect() as conn:
            kept = select(CONSOLE_HOURLY).where(CONSOLE_HOURLY.c.hour.between(*hours))
            got = {(r.hour, r.dim, r.name, r.requests) for r in await conn.execute(kept)}
    finally:
        for other in others:
            await other.dispose()
    one_of = [{(r["hour"], r["dim"], r["name"], r["requests"]) for r in rows} for rows in (a, b)]
    upper = {(h, d, n, q) for h, d, n, q in got if h == hours[1]}  # the hour after: untouched
    assert got - upper in one_of  # one writer's rows whole, never a mix
    live, _ = await view(HourStats(engine, clock=lambda: NOW, settle_s=NEVER), span, "tag")
    await store(engine, hours, [], NOW)  # forget the made-up rows: computed again
    rolled, _ = await view(HourStats(engine, clock=lambda: NOW), span, "tag")
    assert rolled == live


def zeros(requests: int) -> dict[str, Any]:
    columns = [c.name for c in CONSOLE_HOURLY.c if c.name not in ("hour", "dim", "name")]
    out: dict[str, Any] = dict.fromkeys(columns, 0)
    out.update(dict.fromkeys(("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms"), None))
    return out | {"ttft_p95_ms": None, "requests": requests, "computed_at": NOW}


async def test_retention_keeps_the_stored_hours_as_it_keeps_the_days(
    engine: AsyncEngine,
) -> None:
    old = dt.date(2026, 12, 2)
    start = dt.datetime.combine(old, dt.time(), dt.UTC).timestamp()
    await add(engine, traffic(300, start, start + 24 * H))
    span = Window(start, start + 24 * H)
    stats = HourStats(engine, clock=lambda: NOW)
    await view(stats, span, "team")
    await stats.idle()
    before, _ = await view(stats, span, "team")
    assert await drop_days_before(engine, old + dt.timedelta(days=1)) >= 1
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(SPEND_LOG))).scalar() == 0
    after, pending = await view(HourStats(engine, clock=lambda: NOW), span, "team")
    assert pending == []
    assert after == before
    assert sum(after[1]["requests"]) == 300
