"""The spend log on a full disk: the SQLite file and the write-ahead file on a small tmpfs,
filled while a real `chatgate serve` answers traffic, then freed. Every answered request
ends up as exactly one row; meanwhile /metrics shows the records pending and readiness
fails once they pile up. Past the memory cap, records are dropped, counted and logged."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chatgate.cost.usage import JsonlSink, UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_LOG
from tests.clock import wait_until
from tests.fakes.openai_server import FakeOpenAI
from tests.faults.spend_load import (
    Load,
    fill,
    gateway_config,
    metric,
    readiness,
    rows,
    tmpfs,
    wait_until_written,
)
from tests.gateway_harness import serve


def test_a_full_disk_loses_no_answered_request(tmp_path: Path, fake: FakeOpenAI) -> None:
    with tmpfs(tmp_path / "disk", "16m") as disk:
        url = f"sqlite:///{disk / 'chatgate.db'}"  # the WAL goes beside it, on the tmpfs too
        # run in the tmpfs: versions before the WAL spilled to the working directory
        with serve(gateway_config(fake, url), disk) as gateway:
            load = Load(gateway.url).start()
            try:
                load.wait_for(200)
                filler = fill(disk)
                full_at = len(load.answered)
                # records pile up in memory: readiness fails past its limit (1,000)
                deadline = time.monotonic() + 40
                while (status := readiness(gateway.url))[0] == 200:
                    assert time.monotonic() < deadline, "readiness never failed"
                    time.sleep(0.1)
                assert status[0] == 503
                assert not status[1]["checks"]["spend_log"]["ok"]
                assert "held in memory only" in status[1]["checks"]["spend_log"]["error"]
                assert metric(gateway.url, "chatgate_spend_records_pending") > 1000
                filler.unlink()
                load.wait_for(len(load.answered) + 200)
            finally:
                load.stop()
            wait_until_written(gateway.url)
            assert readiness(gateway.url)[0] == 200
            assert metric(gateway.url, "chatgate_spend_records_dropped_total") == 0
        ids, counted = rows(url)
    answered = set(load.answered)
    assert len(answered) > full_at + 1000  # most of the traffic came while the disk was full
    assert set(load.statuses) == {200}
    assert sorted(ids) == sorted(answered)  # every one, once
    assert counted == len(answered)


def record(n: int) -> UsageRecord:
    return UsageRecord(ts=1795262400.0 + n, model="m", cost=Decimal("0.0001"))


async def test_past_the_cap_records_are_dropped_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        url = f"sqlite:///{disk / 'chatgate.db'}"
        dropped: list[int] = []
        sink = await SqlSink.open(
            url, wal_dir=disk / "wal", interval_s=0.01, max_unsaved=50, on_dropped=dropped.append
        )
        sink.emit(record(0))
        await sink.flush()  # the WAL's segment and the database exist before the disk fills
        filler = await asyncio.to_thread(fill, disk)
        with caplog.at_level(logging.ERROR, logger="chatgate.spend"):
            for n in range(1, 81):
                sink.emit(record(n))
                await asyncio.sleep(0.001)
            settled = (50, 30, 30)  # 50 held unsaved, 30 dropped and reported
            await wait_until(
                lambda: (sink.unsaved, sink.dropped, sum(dropped)) == settled,
                what="the writer's drops",
            )
        assert (sink.unsaved, sink.dropped, sum(dropped)) == (50, 30, 30)
        drops = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert len(drops) == 1  # once per period, not once per record
        filler.unlink()
        await sink.aclose()
        engine = create_engine(url)
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(SPEND_LOG)) == 51
        await engine.dispose()


async def test_a_jsonl_sink_keeps_what_a_full_disk_refused(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        sink = JsonlSink(disk / "usage.jsonl", interval_s=3600)
        sink.emit(record(0))
        await sink.flush()
        filler = await asyncio.to_thread(fill, disk)
        for n in range(1, 101):
            sink.emit(record(n))
        with pytest.raises(OSError, match="No space left"):
            await sink.flush()
        filler.unlink()
        await sink.aclose()
        assert sink.read() == [record(n) for n in range(101)]


async def test_a_sink_started_on_a_read_only_disk_catches_up_once_it_is_writable(
    tmp_path: Path,
) -> None:
    """The WAL's disk is read-only at start (as ext4 makes itself after errors): the sink
    starts anyway, and once the disk is writable it takes over an earlier run's records."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        url = f"sqlite:///{tmp_path / 'chatgate.db'}"
        unreachable = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
        earlier = SqlSink(unreachable, wal_dir=disk / "wal")
        earlier.start()
        for n in range(30):
            earlier.emit(record(n))
        await earlier.aclose()  # the database was never there: all 30 stay in the WAL
        remount(disk, "ro")
        try:
            sink = await SqlSink.open(url, wal_dir=disk / "wal", interval_s=0.01)
            for n in range(30, 50):
                sink.emit(record(n))
            await sink.flush()
            assert (sink.written, sink.pending) == (20, 0)  # its own, not the earlier run's
        finally:
            remount(disk, "rw")
        await sink.flush()
        assert sink.written == 50
        await sink.aclose()
        assert not list((disk / "wal").glob("*.wal"))


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, timeout=10)
