"""What tiered routing saved reaches the spend log, the rollup and `chatgate spend`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from chatgate.cli import main
from chatgate.cost.report import aspend_report
from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_LOG

NOW = dt.datetime.now(dt.UTC).replace(hour=12).timestamp()


def tiered(request_id: str, tier: str | None, saved: str | None) -> UsageRecord:
    return UsageRecord(
        ts=NOW,
        model="auto" if tier else "openai/gpt-4o",
        request_id=request_id,
        prompt_tokens=100,
        completion_tokens=10,
        cost=Decimal("0.001"),
        tier=tier,
        tier_score=None if tier is None else 0.125,
        saved=None if saved is None else Decimal(saved),
    )


async def fill(url: str, tmp_path: Path) -> None:
    sink = await SqlSink.open(url, spill_path=tmp_path / "spill.jsonl")
    sink.emit(tiered("r1", "small", "0.0105"))
    sink.emit(tiered("r2", "large", "0"))
    sink.emit(tiered("r3", None, None))
    await sink.aclose()


async def test_the_log_keeps_tier_score_and_saving_and_the_report_sums_it(
    db_url: str, tmp_path: Path
) -> None:
    await fill(db_url, tmp_path)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            query = select(SPEND_LOG.c.request_id, SPEND_LOG.c.tier, SPEND_LOG.c.tier_score,
                           SPEND_LOG.c.saved_pico).order_by(SPEND_LOG.c.request_id)  # fmt: skip
            rows = [tuple(r) for r in (await conn.execute(query)).all()]
    finally:
        await engine.dispose()
    assert rows == [
        ("r1", "small", 0.125, 10_500_000_000),
        ("r2", "large", 0.125, 0),
        ("r3", None, None, None),
    ]
    report = {r.group: r for r in await aspend_report("model", "1d", database_url=db_url)}
    assert report["auto"].saved == Decimal("0.0105")
    assert report["openai/gpt-4o"].saved == 0


def test_the_table_shows_saved_only_when_something_was(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatgate.transport.loop_thread import run_sync

    run_sync(fill(sqlite_url, tmp_path))
    assert main(["spend", "--db", sqlite_url, "--since", "1d"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-1] == "saved"
    assert out[-1].split()[-1] == "0.010500"  # TOTAL
