"""Upgrading a database in place: what chatgate 0.1.0 (schema v10, commit 8968bb1) left behind,
restored from its dumps (tests/fixtures/store, made by scripts/freeze_store.py with that
version's own SqlSink) into real SQLite files and PostgreSQL databases, migrated by this
version; and spill files written by either version, replayed. (From v11: test_upgrade_v11.)"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select, text

from chatgate.cost.spend_wal import parse_line
from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.migrations import add_columns
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG
from tests.store.dumps import FIXTURES, migrated_sink, replay_spill, restore, upgrade

NEW = "cache_write_1h_tokens"
WRITES = "cache_write_tokens"
V10_LOG_COLUMNS = [c.name for c in SPEND_LOG.c if c.name != NEW]
NOV_20 = 1795176000.0  # 2026-11-20 09:20 UTC, a day the v10 database has rows (and a partition)


@pytest.fixture
async def v10(db_url: str) -> str:
    """``db_url`` holding the v10 database, not migrated yet."""
    await restore(db_url, "v10")
    return db_url


def pop_tiers(row: dict[str, object]) -> tuple[object, ...]:
    """Migration 14's spend_log columns, taken out of the row."""
    return tuple(row.pop(name) for name in ("tier", "tier_score", "saved_pico"))


async def test_a_v10_database_upgrades_in_place_with_every_row_kept(v10: str) -> None:
    before, after, columns = await upgrade(v10, 10, [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21])
    assert len(before["spend_log"]) == 9
    assert len(before["spend_daily"]) == 3
    assert after["spend_log"][0].keys() == set(SPEND_LOG.c.keys())
    assert [r.pop(NEW) for r in after["spend_log"]] == [0] * 9
    assert [r.pop("record_id") for r in after["spend_log"]] == [None] * 9  # migration 13
    assert [pop_tiers(r) for r in after["spend_log"]] == [(None, None, None)] * 9  # 16
    assert [r.pop("saved_pico") for r in after["spend_daily"]] == [0] * 3
    levers = ("cache_saved_pico", "prompt_saved_pico", "batch_saved_pico")  # migration 18
    assert [[r.pop(n) for n in ("fallback", *levers)] for r in after["spend_log"]] == [
        [None] * 4
    ] * 9
    assert [[r.pop(n) for n in levers] for r in after["spend_daily"]] == [[0] * 3] * 3
    assert [r.pop("attempt_log") for r in after["spend_log"]] == [None] * 9  # migration 19
    # migration 17: the gateway's provider/model deployments cleared, the columns keep them
    old = [(r.pop("deployment"), r["provider"], r["served_model"]) for r in before["spend_log"]]
    assert {d for d, _, _ in old} == {"anthropic/claude-sonnet-4-5", None}
    assert all(d is None or d == f"{p}/{m}" for d, p, m in old)
    assert [r.pop("deployment") for r in after["spend_log"]] == [None] * len(old)
    # migration 12 filled the rollup's cache writes in from the log (v10 had no 1-hour part)
    writes = {
        (r["day"].day, r["team_id"]): (r.pop(WRITES), r.pop(NEW)) for r in after["spend_daily"]
    }
    assert writes == {(20, "red"): (6000, 0), (21, "red"): (6000, 0), (20, ""): (0, 0)}
    assert after == before
    added = next(c for c in columns["spend_log"] if c["name"] == NEW)
    assert not added["nullable"]
    assert "0" in str(added["default"])


async def test_after_the_upgrade_this_version_and_a_v10_writer_both_write(
    v10: str, tmp_path: Path
) -> None:
    sink = await migrated_sink(v10, tmp_path)
    engine = sink.engine
    ids = {"key_id": "key0", "team_id": "red", "model": "gpt"}  # v10's Nov 20 rollup row
    sink.emit(UsageRecord(ts=NOV_20 + 60, request_id="new_1", **ids, cache_write_tokens=1500))
    sink.emit(
        UsageRecord(
            ts=NOV_20 + 2 * 86_400,  # a day v10 never saw: a new partition on PostgreSQL
            request_id="new_2",
            **ids,
            cache_write_tokens=1500,
            cache_write_1h_tokens=1000,
        )
    )
    await sink.flush()
    assert sink.written == 2
    # a v10 process still running during a rolling upgrade names only the columns it knows
    tokens = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens")
    v10_row = dict.fromkeys(V10_LOG_COLUMNS) | dict.fromkeys((*tokens, "reasoning_tokens"), 0)
    v10_row |= {"day": dt.date(2026, 11, 20), "ts": NOV_20 + 61, "request_id": "old_1"}
    v10_row |= {"model": "gpt", "stream": False, "attempts": 1, "cache_hit": False}
    names = ", ".join(V10_LOG_COLUMNS)
    values = ", ".join(f":{c}" for c in V10_LOG_COLUMNS)
    async with engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO spend_log ({names}) VALUES ({values})"), v10_row)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(SPEND_LOG.c.request_id, SPEND_LOG.c.cache_write_tokens, SPEND_LOG.c[NEW])
            .where(SPEND_LOG.c.request_id.in_(["new_1", "new_2", "old_1"]))
            .order_by(SPEND_LOG.c.request_id)
        )
        assert rows.all() == [("new_1", 1500, 0), ("new_2", 1500, 1000), ("old_1", 0, 0)]
        daily = await conn.execute(
            select(SPEND_DAILY.c.day, SPEND_DAILY.c.requests)
            .where(SPEND_DAILY.c.key_id == "key0", SPEND_DAILY.c.team_id == "red")
            .order_by(SPEND_DAILY.c.day)
        )
        # v10's rollup row for Nov 20 (4 calls) took the new call; Nov 22 is a new row
        assert daily.all() == [(dt.date(2026, 11, 20), 5), (dt.date(2026, 11, 22), 1)]
    await sink.aclose()


async def test_a_spill_file_written_by_v10_replays_with_no_1h_writes(
    sqlite_url: str, tmp_path: Path
) -> None:
    lines = (FIXTURES / "v10.spill.jsonl").read_bytes()
    assert b'"cache_write_tokens":1500' in lines
    assert NEW.encode() not in lines
    assert await replay_spill(sqlite_url, "v10", tmp_path) == 9
    engine = create_engine(sqlite_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(SPEND_LOG.c.cache_write_tokens, SPEND_LOG.c[NEW], SPEND_LOG.c.cost_pico)
            )
        ).all()
    await engine.dispose()
    # 7 priced calls, the unpriced one and the failed one: every value as v10 wrote it
    assert Counter(tuple(r) for r in rows) == {
        (1500, 0, 13_275_000_000): 7,
        (1500, 0, None): 1,
        (0, 0, None): 1,
    }


async def test_a_record_spilled_by_this_version_keeps_its_1h_writes(
    sqlite_url: str, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    unreachable = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    down = SqlSink(unreachable, spill_path=spill)
    record = UsageRecord(
        ts=NOV_20,
        model="sonnet",
        cache_write_tokens=1500,
        cache_write_1h_tokens=1000,
        cost=Decimal("0.013275"),
    )
    down.emit(record)
    await down.aclose()
    assert (down.written, down.pending, down.dropped) == (0, 1, 0)
    (left,) = sink_wal_files(spill)
    assert parse_line(left.read_bytes().strip()) == record  # record_id set by emit
    sink = await SqlSink.open(sqlite_url, spill_path=spill)
    await sink.aclose()
    assert sink.written == 1
    engine = create_engine(sqlite_url)
    async with engine.connect() as conn:
        row = (await conn.execute(select(SPEND_LOG.c.cache_write_tokens, SPEND_LOG.c[NEW]))).one()
    await engine.dispose()
    assert tuple(row) == (1500, 1000)


def sink_wal_files(spill: Path) -> list[Path]:
    return list((spill.parent / "chatgate-spend-wal").glob("*.wal"))


def test_a_not_null_column_without_a_server_default_cannot_be_added() -> None:
    table = Table("t", MetaData(), Column("n", Integer, nullable=False, default=0))
    with pytest.raises(ValueError, match=r"t\.n: .*needs a server_default"):
        add_columns(table, "n")
