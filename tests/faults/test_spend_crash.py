"""A SIGKILL under load loses at most the spend records of requests answered in the last
WAL window; a restart replays the rest, and a replay cut short writes no record twice."""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.cli import WORKER_START_TIMEOUT_S
from chatgate.cost.spend_wal import read_segment
from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG
from tests.clock import poll_until
from tests.fakes.openai_server import FakeOpenAI
from tests.faults.spend_load import DiskProbe, Load, gateway_config, rows, wait_until_written
from tests.gateway_harness import serve

# From a request's answer to its record on disk: the usage pipeline's 20 ms tick, the WAL's
# 20 ms group-commit window, the write and fdatasync (measured: at most 45 ms, on a loaded
# 2-core machine). Before the WAL the unwritten buffer held up to 100 records or 0.5 s.
# Measured on the gateway's clock (``Load(gateway_pid=...)``): wall time in which it waited
# for a CPU does not count, or a machine busy elsewhere would stretch any window. Nor does a
# slow disk: the window grows by the longest fdatasync measured on the WAL's filesystem in the
# second before the kill (``DiskProbe``), which the next group's write waits for.
WINDOW_S = 0.075
LOOKBACK_S = 1.0  # the disk's recent past that can still hold records back at the kill
ROUNDS = 3  # each kill lands at a random point of the writer's cycle: three make it likely
# that one of them falls late in it, where the buffer of old would have lost more


def test_sigkill_under_load_loses_only_the_last_window(tmp_path: Path, fake: FakeOpenAI) -> None:
    url = f"sqlite:///{tmp_path / 'chatgate.db'}"
    config = gateway_config(fake, url)
    answered: dict[str, float] = {}
    late: set[str] = set()
    in_flight = 0
    with DiskProbe(tmp_path) as disk:
        for _ in range(ROUNDS):  # each start replays what the previous process left
            with serve(config, tmp_path) as gateway:
                load = Load(gateway.url, threads=4, pause_s=0.01, gateway_pid=gateway.proc.pid)
                load.start().wait_for(1000)
                window = WINDOW_S + disk.worst_since(time.monotonic() - LOOKBACK_S)
                killed_at = load.now()
                os.kill(gateway.proc.pid, signal.SIGKILL)
                load.stop()
                gateway.proc.wait(5)
            assert list((tmp_path / "chatgate-spend-wal").glob("*.wal"))  # for the next start
            answered |= load.answered
            late |= {rid for rid, at in load.answered.items() if at > killed_at - window}
            in_flight += load.threads
    with serve(config, tmp_path) as gateway:
        wait_until_written(gateway.url)
    ids, counted = rows(url)
    assert len(ids) == len(set(ids)) == counted  # no record twice
    missing = set(answered) - set(ids)
    assert missing <= late
    assert len(set(ids) - set(answered)) <= in_flight  # done, but the answer never arrived
    assert len(answered) >= ROUNDS * 1000


def record(n: int) -> UsageRecord:
    return UsageRecord(ts=1795262400.0 + n, model="m", key_id="k", cost=Decimal("0.0001"))


async def refuse_inserts_past(engine: AsyncEngine, rows: int | None) -> None:
    """A real database refusing writes past ``rows`` rows (None: accept again)."""
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER IF EXISTS refuse"))
        if rows is not None:
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON spend_log "
                    f"WHEN (SELECT count(*) FROM spend_log) >= {rows} "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )


async def test_a_replay_cut_short_writes_no_record_twice(tmp_path: Path) -> None:
    """A run leaves 250 records in its WAL; the next one's replay stops after 100 rows (the
    database refuses more: what a crash would leave), the third finishes: 250 rows."""
    url = f"sqlite:///{tmp_path / 'chatgate.db'}"
    wal = tmp_path / "wal"
    engine = create_engine(url)
    await migrate(engine)
    await refuse_inserts_past(engine, 0)
    first = await SqlSink.open(url, wal_dir=wal, batch_size=100, interval_s=0.01)
    for n in range(250):
        first.emit(record(n))
    await first.aclose()
    (segment,) = wal.glob("*.wal")
    assert len(read_segment(segment)) == 250
    await refuse_inserts_past(engine, 100)
    second = await SqlSink.open(url, wal_dir=wal, batch_size=100, interval_s=0.01)
    assert second.pending == 250
    await second.aclose()
    assert (second.written, second.pending) == (100, 250)  # the segment stays whole
    await refuse_inserts_past(engine, None)
    third = await SqlSink.open(url, wal_dir=wal, batch_size=100, interval_s=0.01)
    await third.aclose()
    assert (third.written, third.pending) == (150, 0)
    assert not list(wal.iterdir())
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count(func.distinct(SPEND_LOG.c.record_id)))) == 250
        assert await conn.scalar(select(func.count()).select_from(SPEND_LOG)) == 250
        assert await conn.scalar(select(func.sum(SPEND_DAILY.c.requests))) == 250
    await engine.dispose()


def test_a_killed_worker_is_replayed_by_its_replacement(tmp_path: Path, fake: FakeOpenAI) -> None:
    """With --workers 2, one worker is SIGKILLed under load: the worker started in its place
    replays its WAL, and leaves its live sibling's alone (each holds its own lock)."""
    url = f"sqlite:///{tmp_path / 'chatgate.db'}"
    config = gateway_config(fake, url)
    with serve(config, tmp_path, extra_args=("--workers", "2")) as gateway:
        poll_until(lambda: len(gateway.worker_pids()) == 2, 30, "two workers")
        before = gateway.worker_pids()
        # the victim's clock: the records it loses are its own
        load = Load(
            gateway.url,
            threads=4,
            pause_s=0.01,
            reconnect=True,
            gateway_pid=before[0],
            max_s=WORKER_START_TIMEOUT_S + 120,  # outlasts the wait for the replacement
        )
        try:
            with DiskProbe(tmp_path) as disk:
                load.start().wait_for(1000)
                window = WINDOW_S + disk.worst_since(time.monotonic() - LOOKBACK_S)
            killed_at = load.now()
            os.kill(before[0], signal.SIGKILL)
            # the supervisor sees a dead worker at once, or (killed while it awaited the
            # worker's answer to a health ping) after WORKER_START_TIMEOUT_S
            poll_until(
                lambda: len(set(gateway.worker_pids()) - set(before)) >= 1,
                WORKER_START_TIMEOUT_S + 60,
                "no worker replaced the killed one",
                every_s=0.05,
            )
            load.wait_for(len(load.answered) + 500)
        finally:
            load.stop()
        wait_until_written(gateway.url)
    ids, counted = rows(url)
    assert len(ids) == len(set(ids)) == counted
    answered = load.answered
    late = {rid for rid, at in answered.items() if at > killed_at - window}
    assert set(answered) - set(ids) <= late
    assert not list((tmp_path / "chatgate-spend-wal").glob("*.wal"))  # all replayed, then gone
