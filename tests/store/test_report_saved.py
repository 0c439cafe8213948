"""What tiered routing saved reaches the spend log, the rollup and `chatgate spend`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import orjson
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
    assert out[-2].split()[-1] == "0.010500"  # TOTAL
    assert out[-1] == "spent 0.003000 USD; saved 0.010500: tiering 0.010500"


def lever(request_id: str, **saved: str) -> UsageRecord:
    return UsageRecord(
        ts=NOW,
        model="openai/gpt-4o",
        request_id=request_id,
        cost=Decimal("0.001"),
        **{name: Decimal(usd) for name, usd in saved.items()},
    )


def test_every_levers_saving_reaches_the_rollup_the_report_and_the_table(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatgate.transport.loop_thread import run_sync

    async def fill_levers() -> None:
        sink = await SqlSink.open(sqlite_url, spill_path=tmp_path / "spill.jsonl")
        sink.emit(lever("hit", cache_saved="0.02"))
        sink.emit(lever("read", prompt_saved="0.003"))
        sink.emit(lever("batch", batch_saved="0.0004", prompt_saved="0.001"))
        sink.emit(lever("tier", saved="0.00005"))
        sink.emit(lever("none"))
        await sink.aclose()

    run_sync(fill_levers())
    (row,) = run_sync(aspend_report("model", "1d", database_url=sqlite_url))
    assert row.by_lever == {
        "tiering": Decimal("0.00005"),
        "cache hits": Decimal("0.02"),
        "prompt caching": Decimal("0.004"),
        "batch": Decimal("0.0004"),
    }
    assert main(["spend", "--db", sqlite_url, "--since", "1d"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].split()[-1] == "0.024450"  # the saved column: every lever's
    assert out[-1] == (
        "spent 0.005000 USD; saved 0.024450: tiering 0.000050, cache hits 0.020000, "
        "prompt caching 0.004000, batch 0.000400"
    )
    assert main(["spend", "--db", sqlite_url, "--since", "1d", "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)["data"][0]
    assert (data["cache_saved"], data["prompt_saved"], data["batch_saved"]) == (
        "0.02", "0.004", "0.0004",
    )  # fmt: skip
