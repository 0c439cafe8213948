"""Spend reports from the daily rollup, through the API and the `chatgate spend` command."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

import chatgate
from chatgate.cli import main
from chatgate.cost.report import aspend_report, parse_since
from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink

TODAY = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def rec(days_ago: int, model: str, key: str | None, team: str, cost: str | None) -> UsageRecord:
    return UsageRecord(
        ts=(TODAY - dt.timedelta(days=days_ago)).timestamp(),
        model=model,
        key_id=key,
        team_id=team,
        prompt_tokens=100,
        completion_tokens=10,
        cost=None if cost is None else Decimal(cost),
    )


@pytest.fixture
async def filled(db_url: str, tmp_path: Path) -> str:
    sink = await SqlSink.open(db_url, spill_path=tmp_path / "spill.jsonl")
    for r in (
        rec(0, "openai/gpt-4o", "k1", "red", "0.50"),
        rec(0, "openai/gpt-4o", "k2", "blue", "0.25"),
        rec(1, "anthropic/claude-sonnet-4-5", "k1", "red", "1.00"),
        rec(3, "vllm/house", None, "red", None),
        rec(10, "openai/gpt-4o", "k1", "red", "9.00"),  # outside 7d
    ):
        sink.emit(r)
    await sink.aclose()
    return db_url


async def test_report_groups(filled: str) -> None:
    by_model = await aspend_report("model", "7d", database_url=filled)
    assert [(r.group, r.requests, r.cost, r.unpriced) for r in by_model] == [
        ("anthropic/claude-sonnet-4-5", 1, Decimal("1"), 0),
        ("openai/gpt-4o", 2, Decimal("0.75"), 0),
        ("vllm/house", 1, Decimal(0), 1),
    ]
    by_key = await aspend_report("key", "30d", database_url=filled)
    assert [(r.group, r.cost) for r in by_key] == [
        ("k1", Decimal("10.5")),
        ("k2", Decimal("0.25")),
        ("(none)", Decimal(0)),
    ]
    by_day = await aspend_report("day", "2d", database_url=filled)
    assert [r.group for r in by_day] == [
        (TODAY - dt.timedelta(days=1)).date().isoformat(),
        TODAY.date().isoformat(),
    ]
    with pytest.raises(chatgate.InvalidRequestError, match="one of model, key"):
        await aspend_report("color", database_url=filled)  # type: ignore[arg-type]


def test_parse_since() -> None:
    today = dt.date(2026, 11, 21)
    assert parse_since("7d", today) == dt.date(2026, 11, 15)
    assert parse_since("1w", today) == dt.date(2026, 11, 15)
    assert parse_since("2026-11-01", today) == dt.date(2026, 11, 1)
    with pytest.raises(chatgate.InvalidRequestError, match="use a span like 7d"):
        parse_since("last week", today)


def test_spend_command(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spend", "--db", sqlite_url]) == 0
    assert "no spend recorded since 7d" in capsys.readouterr().out
    sink_records = [rec(0, "openai/gpt-4o", "k1", "red", "0.5"), rec(0, "x/y", "k1", "blue", None)]

    async def fill() -> None:
        sink = await SqlSink.open(sqlite_url, spill_path=tmp_path / "spill.jsonl")
        for r in sink_records:
            sink.emit(r)
        await sink.aclose()

    from chatgate.transport.loop_thread import run_sync

    run_sync(fill())
    config = tmp_path / "chatgate.yaml"
    config.write_text(f"general_settings: {{database_url: '{sqlite_url}'}}\n")
    assert main(["spend", "--by", "team", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "team",
        "requests",
        "errors",
        "prompt",
        "tok",
        "completion",
        "tok",
        "cost",
        "(USD)",
    ]
    assert out[2].split() == ["red", "1", "0", "100", "10", "0.500000"]
    assert out[3].split()[:2] == ["blue", "1"]
    assert out[3].endswith("0.000000 (+1 unpriced)")
    assert out[-1].split()[:2] == ["TOTAL", "2"]
    assert main(["spend", "--since", "soon", "--db", sqlite_url]) == 2
    assert "use a span like 7d" in capsys.readouterr().err
    assert chatgate.spend_report("team", database_url=sqlite_url)[0].group == "red"
