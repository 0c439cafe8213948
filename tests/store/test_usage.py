"""Usage records and sinks: memory, JSONL, and the SQL spend log on real SQLite and
PostgreSQL, including a PostgreSQL outage in the middle of a run."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

import chatgate
from chatgate.cost.usage import JsonlSink, MemorySink, UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG
from tests.clock import wait_until
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json
from tests.fakes.postgres import PostgresServer, require_bin_dir

NOV_21 = 1795262400.0  # 2026-11-21 09:20 UTC


def record(n: int, **kw: object) -> UsageRecord:
    fields: dict[str, object] = {
        "ts": NOV_21 + n,
        "model": "smart",
        "key_id": f"key{n % 3}",
        "team_id": "red" if n % 2 else "blue",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost": Decimal("0.000125"),
        **kw,
    }
    return UsageRecord(**fields)  # type: ignore[arg-type]


async def test_record_from_a_real_response(fake: FakeOpenAI) -> None:
    fake.script(
        Reply(
            json=completion_json(
                "hi", model="gpt-4o", prompt_tokens=1000, completion_tokens=200, cached_tokens=400
            )
        )
    )
    response = await chatgate.acompletion(
        "openai/gpt-4o", [{"role": "user", "content": "x"}], api_key="sk", api_base=fake.base_url
    )
    rec = UsageRecord.of(response, key_id="k1", team_id="t1", tags=["a", "b"])
    assert (rec.model, rec.provider, rec.served_model) == ("openai/gpt-4o", "openai", "gpt-4o")
    assert (rec.prompt_tokens, rec.cached_tokens, rec.completion_tokens) == (1000, 400, 200)
    assert rec.cost == Decimal("0.004")
    assert rec.request_id == "req_fake_1"
    assert rec.finish_reason == "stop"
    assert UsageRecord.from_json(rec.to_json()) == rec
    failed = UsageRecord.failed("smart", chatgate.RateLimitError("slow down"), key_id="k1")
    assert (failed.error, failed.cost) == ("RateLimitError", None)


async def test_memory_and_jsonl_sinks(tmp_path: Path) -> None:
    memory = MemorySink()
    jsonl = JsonlSink(tmp_path / "usage.jsonl", interval_s=0.01)
    records = [record(n) for n in range(5)]
    for r in records:
        memory.emit(r)
        jsonl.emit(r)
    await wait_until(lambda: len(jsonl.read()) == 5, what="the first five flushed")
    jsonl.emit(record(5))
    await jsonl.aclose()
    assert memory.records == records
    assert jsonl.read() == [*records, record(5)]


async def test_sql_sink_writes_rows_and_rollup(db_url: str, tmp_path: Path) -> None:
    sink = await SqlSink.open(
        db_url, spill_path=tmp_path / "spill.jsonl", batch_size=7, interval_s=0.01
    )
    for n in range(40):
        sink.emit(record(n))
    sink.emit(record(40, cost=None))
    sink.emit(record(41, cost=None, error="RateLimitError", prompt_tokens=0, completion_tokens=0))
    await sink.aclose()
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(SPEND_LOG)) == 42
        totals = (
            await conn.execute(
                select(
                    func.sum(SPEND_DAILY.c.requests),
                    func.sum(SPEND_DAILY.c.cost_pico),
                    func.sum(SPEND_DAILY.c.unpriced),
                    func.sum(SPEND_DAILY.c.errors),
                    func.count(),
                )
            )
        ).one()
    await engine.dispose()
    assert tuple(totals) == (42, 40 * 125_000_000, 1, 1, 6)  # 3 keys x 2 teams
    assert sink.written == 42
    assert not (tmp_path / "spill.jsonl").exists()


async def test_records_in_equal_records_out_across_a_database_outage(tmp_path: Path) -> None:
    server = PostgresServer(require_bin_dir()).init()
    server.start()
    spill = tmp_path / "spill.jsonl"
    aside = tmp_path / "spill.jsonl.replaying"
    try:
        sink = await SqlSink.open(
            server.url,
            spill_path=spill,
            batch_size=20,
            interval_s=0.02,
            max_buffer=50,
            max_backoff_s=0.1,
        )
        total = 0
        for phase in ("up", "down", "up again"):
            if phase == "down":
                await asyncio.to_thread(server.stop)
            if phase == "up again":
                assert sink.pending > 0
                assert sink.dropped == 0
                assert sink.held <= 50 < sink.pending  # the rest only in the WAL, read back
                await asyncio.to_thread(server.start)
            for _ in range(150):
                sink.emit(record(total))
                total += 1
                if total % 10 == 0:
                    await asyncio.sleep(0.005)
            if phase == "up":
                await wait_until(lambda n=total: sink.written == n, what="written while up")
            if phase == "down":  # the writer moves what memory cannot hold into the WAL
                await wait_until(lambda: sink.held <= 50, what="memory back to its bound")
        # the writer recovers and replays on its own (backoff <= 0.1 s)
        await wait_until(lambda: sink.written == total, timeout_s=10, what="everything written")
        assert sink.written == total
        assert sink.pending == 0
        await sink.aclose()
        assert sink.written == total
        assert not spill.exists()
        assert not aside.exists()
        assert not list(sink.wal.directory.iterdir())
        engine = create_engine(server.url)
        async with engine.connect() as conn:
            rows = await conn.scalar(select(func.count()).select_from(SPEND_LOG))
            requests = await conn.scalar(select(func.sum(SPEND_DAILY.c.requests)))
        await engine.dispose()
        assert rows == requests == total == 450
    finally:
        await asyncio.to_thread(server.destroy)


async def test_a_spill_file_left_by_an_earlier_run_is_replayed_at_start(
    tmp_path: Path, sqlite_url: str
) -> None:
    spill = tmp_path / "spill.jsonl"
    spill.write_bytes(b"".join(record(n).to_json() + b"\n" for n in range(3)))  # an old run's
    sink = await SqlSink.open(sqlite_url, spill_path=spill, interval_s=0.01)
    sink.emit(record(3))
    await sink.aclose()
    assert sink.written == 4
    assert not spill.exists()


async def test_an_idle_write_ahead_loop_wakes_for_the_next_record(tmp_path: Path) -> None:
    """Idle, the WAL loop waits for a record rather than waking every window: a record that
    comes after an idle spell still reaches the WAL within the window, long before the
    database writer's interval."""
    sink = await SqlSink.open(
        f"sqlite+aiosqlite:///{tmp_path}/s.db", spill_path=tmp_path / "spill.jsonl", interval_s=60
    )
    try:
        for n in (1, 2):
            await asyncio.sleep(0.1)  # idle: nothing to write
            assert sink.unsaved == 0
            sink.emit(record(n))
            assert sink.unsaved == 1
            await wait_until(lambda: sink.unsaved == 0, timeout_s=2, what=f"record {n} in the WAL")
        assert sink.written == 0  # the database writer has not run: the WAL alone has them
    finally:
        await sink.aclose()
    assert sink.written == 2
