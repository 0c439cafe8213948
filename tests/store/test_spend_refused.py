"""A spend record the database refuses for what it holds never holds back the others: the
library's SqlSink (no gateway fitting its tags) writes a batch holding a too-long string, too
many tags and a number no column can take; the good records land at once, the long ones cut
to fit, the impossible one set aside in a file beside the WAL — records in = rows + set aside.
Before, the batch was retried forever with every record in it unwritten (on PostgreSQL; on
SQLite the out-of-range integer did the same)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from chatgate.cost.spend_refused import fitted, refused_for_data
from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_LOG
from tests.clock import wait_until

SECRETLESS = "model-x"


def record(n: int, **fields: object) -> UsageRecord:
    return UsageRecord(ts=time.time(), model=SECRETLESS, request_id=f"req-{n}", **fields)  # type: ignore[arg-type]


async def rows(db_url: str) -> dict[str, tuple[str | None, str | None, int]]:
    """request id -> (key_id or user_id, tags, prompt tokens)"""
    engine = create_engine(db_url)
    c = SPEND_LOG.c
    async with engine.connect() as conn:
        found = await conn.execute(
            select(c.request_id, c.key_id, c.user_id, c.tags, c.prompt_tokens)
        )
        out = {r[0]: (r[1] or r[2], r[3], r[4]) for r in found}
    await engine.dispose()
    return out


async def test_a_refused_record_never_holds_back_its_batch(db_url: str, tmp_path: Path) -> None:
    sink = await SqlSink.open(
        db_url, spill_path=tmp_path / "spill.jsonl", interval_s=0.01, batch_size=100
    )
    many_tags = tuple(f"{n:02d}".ljust(64, "t") for n in range(16))  # 1,039 characters joined
    batch = [record(n, prompt_tokens=n) for n in range(40)]
    batch[7] = record(7, key_id="k" * 300)  # key_id is 128 characters
    batch[21] = record(21, tags=many_tags)  # tags is 512
    batch[12] = record(12, user_id="a\x00b", tags=("x\x00",))  # PostgreSQL's text refuses NUL
    batch[33] = record(33, cost=Decimal("1e30"))  # in picodollars, past every integer column
    for r in batch:
        sink.emit(r)
    await wait_until(lambda: sink.written == 39 and sink.refused == 1, timeout_s=20)
    await sink.aclose()
    stored = await rows(db_url)
    assert set(stored) == {f"req-{n}" for n in range(40)} - {"req-33"}
    tags = stored["req-21"][1]
    assert tags is not None
    if db_url.startswith("sqlite"):  # SQLite holds any length: nothing to cut
        assert stored["req-7"][0] == "k" * 300
        assert tags == ",".join(many_tags)
    else:
        assert stored["req-7"][0] == "k" * 128
        assert len(tags) <= 512
        assert tags.split(",") == list(many_tags[: len(tags.split(","))])
    assert stored["req-5"] == (None, None, 5)
    [aside] = list((tmp_path / "chatgate-spend-wal").glob("refused-*.jsonl"))
    [line] = aside.read_bytes().splitlines()
    kept = UsageRecord.from_json(line)
    assert (kept.request_id, kept.cost) == ("req-33", Decimal("1e30"))  # as it came
    nul = stored["req-12"]
    if db_url.startswith("sqlite"):  # SQLite keeps a NUL: nothing to change
        assert nul[0] == "a\x00b"
    else:
        assert (nul[0], nul[1]) == ("a\ufffdb", "x\ufffd")


async def test_an_int_past_64_bits_reaches_the_wal_and_is_set_aside(
    db_url: str, tmp_path: Path
) -> None:
    # orjson cannot write it: before, the WAL loop died on it and no record reached the WAL again
    sink = await SqlSink.open(db_url, spill_path=tmp_path / "spill.jsonl", interval_s=0.01)
    sink.emit(record(1, prompt_tokens=2**70))
    sink.emit(record(2))
    await wait_until(lambda: sink.refused == 1 and sink.written == 1, timeout_s=20)
    assert sink.pending == 0
    await sink.aclose()
    assert set(await rows(db_url)) == {"req-2"}


async def test_a_database_refusing_every_record_is_down_not_offended(
    db_url: str, tmp_path: Path
) -> None:
    """A lone refused record, or a batch refused record by record (a read-only role, an
    operator's trigger), sets nothing aside: it is kept and retried like an outage."""
    sink = await SqlSink.open(
        db_url, spill_path=tmp_path / "spill.jsonl", interval_s=0.01, max_backoff_s=0.05
    )
    sink.emit(record(1, cost=Decimal("1e30")))
    await asyncio.sleep(0.5)  # retried, with backoff, and kept
    assert (sink.refused, sink.written, sink.pending) == (0, 0, 1)
    sink.emit(record(2))  # the database takes this one: the first is the record's fault
    await wait_until(lambda: sink.refused == 1 and sink.written == 1, timeout_s=20)
    await sink.aclose()


def test_what_counts_as_a_refusal() -> None:
    # an outage is kept and retried (tests/faults: PostgreSQL stopped, a full disk)
    from sqlalchemy.exc import DataError, OperationalError

    assert refused_for_data(DataError("INSERT", {}, Exception("value too long")))
    assert refused_for_data(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert not refused_for_data(OperationalError("INSERT", {}, Exception("connection refused")))
    assert not refused_for_data(ConnectionResetError())
    assert fitted(record(1)) is None  # nothing to cut: the record is written as it is
