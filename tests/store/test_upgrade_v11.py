"""Upgrading what schema v11 (commit 76afe51) left behind: migration 12 adds the rollup's
cache-write columns and fills them in from the spend log for the days it still has; a day
retention already dropped keeps 0. Dumps in tests/fixtures/store (scripts/freeze_store.py):
Nov 20, key0/gpt: 4 calls, 1500 writes each, none for 1 hour (and a failed call without a
team); Nov 21, key1/sonnet: 4 calls, 1500 writes each, 1000 of them for 1 hour."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, text

from chatgate.cost.report import aspend_report
from chatgate.cost.usage import UsageRecord
from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate
from chatgate.store.partitions import drop_days_before
from chatgate.store.rollup import fill_cache_writes
from chatgate.store.schema.spend import SPEND_DAILY
from tests.store.dumps import migrated_sink, replay_spill, restore, snapshot, upgrade

NEW = ("cache_write_tokens", "cache_write_1h_tokens")
NOV_20, NOV_21 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
FILLED = {(NOV_20, "red"): (6000, 0), (NOV_21, "red"): (6000, 4000), (NOV_20, ""): (0, 0)}


@pytest.fixture
async def v11(db_url: str) -> str:
    """``db_url`` holding the v11 database, not migrated yet."""
    await restore(db_url, "v11")
    return db_url


def writes(rows: list[dict[str, object]]) -> dict[tuple[object, object], tuple[object, ...]]:
    """Each rollup row's new columns (taken out of the row), by day and team."""
    return {(r["day"], r["team_id"]): tuple(r.pop(name) for name in NEW) for r in rows}


async def test_a_v11_database_upgrades_with_its_rollup_filled_in_from_the_log(v11: str) -> None:
    before, after, columns = await upgrade(v11, 11, [12, 13, 14, 15, 16, 17, 18, 19, 20, 21])
    assert [r.pop("record_id") for r in after["spend_log"]] == [None] * len(before["spend_log"])
    # migration 17: the gateway's provider/model deployments cleared, the columns keep them
    old = [(r.pop("deployment"), r["provider"], r["served_model"]) for r in before["spend_log"]]
    assert {d for d, _, _ in old} == {"anthropic/claude-sonnet-4-5", None}
    assert all(d is None or d == f"{p}/{m}" for d, p, m in old)
    assert [r.pop("deployment") for r in after["spend_log"]] == [None] * len(old)
    for row in after["spend_log"]:  # migration 16: NULL for calls that were not tiered
        assert [row.pop(n) for n in ("tier", "tier_score", "saved_pico")] == [None] * 3
    assert [r.pop("saved_pico") for r in after["spend_daily"]] == [0] * 3
    levers = ("cache_saved_pico", "prompt_saved_pico", "batch_saved_pico")
    for row in after["spend_log"]:  # migration 18: not known for calls before it
        assert [row.pop(n) for n in ("fallback", *levers)] == [None] * 4
        assert row.pop("attempt_log") is None  # migration 19
    for row in after["spend_daily"]:
        assert [row.pop(n) for n in levers] == [0] * 3
    assert len(before["spend_daily"]) == 3
    report = await aspend_report("day", NOV_20, database_url=v11)
    assert writes(after["spend_daily"]) == FILLED
    assert after == before  # every other value as v11 wrote it
    for column in (c for c in columns["spend_daily"] if c["name"] in NEW):
        assert not column["nullable"]
        assert "0" in str(column["default"])
    assert [(r.group, r.cache_write_tokens, r.cache_write_1h_tokens) for r in report] == [
        ("2026-11-20", 6000, 0),
        ("2026-11-21", 6000, 4000),
    ]


async def test_a_day_retention_dropped_before_the_upgrade_keeps_0(v11: str) -> None:
    engine = create_engine(v11)
    try:
        assert await drop_days_before(engine, NOV_21) >= 1  # v11's retention, before upgrading
        await migrate(engine)
        after = await snapshot(engine)
    finally:
        await engine.dispose()
    assert writes(after["spend_daily"]) == {**FILLED, (NOV_20, "red"): (0, 0)}


async def test_rows_a_v11_writer_adds_during_a_rolling_upgrade_are_filled_by_running_it_again(
    v11: str, tmp_path: Path
) -> None:
    sink = await migrated_sink(v11, tmp_path)
    engine = sink.engine
    ids = {"key_id": "key1", "team_id": "red", "model": "sonnet"}  # v11's Nov 21 row
    ts = 1795262400.0 + 100  # Nov 21
    sink.emit(UsageRecord(ts=ts, **ids, cache_write_tokens=1500, cache_write_1h_tokens=1000))
    await sink.flush()
    # a v11 process still running: its log row has the writes, its upsert names none of them
    v11_log = {"day": NOV_21, "ts": ts + 1, "model": "sonnet", "key_id": "key1"}
    v11_log |= {"team_id": "red", "stream": False, "prompt_tokens": 1600, "completion_tokens": 0}
    v11_log |= {"cached_tokens": 0, "cache_write_tokens": 1500, "cache_write_1h_tokens": 1000}
    v11_log |= {"reasoning_tokens": 0, "attempts": 1, "cache_hit": False}
    names = ", ".join(v11_log)
    async with engine.begin() as conn:
        await conn.execute(
            text(f"INSERT INTO spend_log ({names}) VALUES ({', '.join(':' + n for n in v11_log)})"),
            v11_log,
        )
        await conn.execute(
            text(
                "INSERT INTO spend_daily (day, key_id, team_id, user_id, model, requests, errors,"
                " prompt_tokens, completion_tokens, cached_tokens, cost_pico, unpriced)"
                " VALUES (:day, 'key1', 'red', '', 'sonnet', 1, 0, 1600, 0, 0, 0, 0)"
                " ON CONFLICT (day, key_id, team_id, user_id, model) DO UPDATE SET"
                " requests = spend_daily.requests + excluded.requests"
            ),
            {"day": NOV_21},
        )
    key = (SPEND_DAILY.c.day == NOV_21) & (SPEND_DAILY.c.key_id == "key1")
    query = select(SPEND_DAILY.c.requests, *(SPEND_DAILY.c[n] for n in NEW)).where(key)
    try:
        async with engine.connect() as conn:
            assert tuple((await conn.execute(query)).one()) == (6, 7500, 5000)
        async with engine.begin() as conn:
            await fill_cache_writes(conn, since=NOV_21)
        async with engine.connect() as conn:
            assert tuple((await conn.execute(query)).one()) == (6, 9000, 6000)
    finally:
        await sink.aclose()


async def test_a_spill_file_written_by_v11_replays_into_the_rollup(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert await replay_spill(sqlite_url, "v11", tmp_path) == 9
    report = await aspend_report("day", NOV_20, database_url=sqlite_url)
    assert [(r.cache_write_tokens, r.cache_write_1h_tokens) for r in report] == [
        (6000, 0),
        (6000, 4000),
    ]
