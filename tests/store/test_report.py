"""Spend reports from the daily rollup, through the API and the `chatgate spend` command."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

import chatgate
from chatgate.cli import main
from chatgate.cost.report import SpendRow, aspend_report, parse_since
from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.spend_cli import compact, format_plain

TODAY = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def rec(
    days_ago: int, model: str, key: str | None, team: str, cost: str | None, **tokens: int
) -> UsageRecord:
    return UsageRecord(
        ts=(TODAY - dt.timedelta(days=days_ago)).timestamp(),
        model=model,
        key_id=key,
        team_id=team,
        prompt_tokens=100,
        completion_tokens=10,
        cost=None if cost is None else Decimal(cost),
        **tokens,
    )


CACHED = {"cached_tokens": 20, "cache_write_tokens": 70, "cache_write_1h_tokens": 50}


@pytest.fixture
async def filled(db_url: str, tmp_path: Path) -> str:
    sink = await SqlSink.open(db_url, spill_path=tmp_path / "spill.jsonl")
    for r in (
        rec(0, "openai/gpt-4o", "k1", "red", "0.50"),
        rec(0, "openai/gpt-4o", "k2", "blue", "0.25"),
        rec(1, "anthropic/claude-sonnet-4-5", "k1", "red", "1.00", **CACHED),
        rec(2, "anthropic/claude-sonnet-4-5", "k2", "red", "1.00", cached_tokens=90),
        rec(3, "vllm/house", None, "red", None),
        rec(10, "openai/gpt-4o", "k1", "red", "9.00"),  # outside 7d
    ):
        sink.emit(r)
    await sink.aclose()
    return db_url


async def test_report_groups(filled: str) -> None:
    by_model = await aspend_report("model", "7d", database_url=filled)
    assert [(r.group, r.requests, r.cost, r.unpriced) for r in by_model] == [
        ("anthropic/claude-sonnet-4-5", 2, Decimal("2"), 0),
        ("openai/gpt-4o", 2, Decimal("0.75"), 0),
        ("vllm/house", 1, Decimal(0), 1),
    ]
    cache = [(r.cached_tokens, r.cache_write_tokens, r.cache_write_1h_tokens) for r in by_model]
    assert cache == [(110, 70, 50), (0, 0, 0), (0, 0, 0)]
    by_key = await aspend_report("key", "30d", database_url=filled)
    assert [(r.group, r.cost, r.cache_write_1h_tokens) for r in by_key] == [
        ("k1", Decimal("10.5"), 50),
        ("k2", Decimal("1.25"), 0),
        ("(none)", Decimal(0), 0),
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
    sink_records = [
        rec(0, "openai/gpt-4o", "k1", "red", "0.5", **CACHED),
        rec(0, "x/y", "k1", "blue", None),
    ]

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
    assert out[0].split() == ["requests", "prompt", "cache", "cache", "write", "completion", "cost"]
    assert out[1].split() == ["team", "(errors)", "tokens", "read", "(1h)", "tokens", "(USD)"]
    assert out[3].split() == ["red", "1", "100", "20", "70", "(50)", "10", "0.500000"]
    assert out[4].split() == ["blue", "1", "100", "0", "0", "10", "0.000000", "(+1)"]
    assert out[-2].split() == ["TOTAL", "2", "200", "20", "70", "(50)", "20", "0.500000", "(+1)"]
    assert out[-1] == "(+N): N successful calls had no price and are not in the cost"
    assert main(["spend", "--by", "team", "--db", sqlite_url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["data"][0] == {
        "group": "red",
        "requests": 1,
        "errors": 0,
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "cost": "0.5",
        "unpriced": 0,
        **CACHED,
        **dict.fromkeys(("saved", "cache_saved", "prompt_saved", "batch_saved"), "0"),
    }
    assert main(["spend", "--since", "soon", "--db", sqlite_url]) == 2
    assert "use a span like 7d" in capsys.readouterr().err
    assert chatgate.spend_report("team", database_url=sqlite_url)[0].group == "red"


def test_compact_token_counts_fit_six_characters() -> None:
    cases = {
        0: "0",
        99_999: "99,999",
        100_000: "100k",
        312_002: "312k",
        999_499: "999k",
        999_500: "1.00M",
        2_310_044: "2.31M",
        12_345_678: "12.3M",
        999_600_000: "1.00B",
        12_345_678_901: "12.3B",
    }
    assert {n: compact(n) for n in cases} == cases
    assert all(len(text) <= 6 for text in cases.values())


def test_a_busy_week_fits_100_columns() -> None:
    row = SpendRow(
        "anthropic/claude-sonnet-4-5",
        requests=123_456,
        errors=1_234,
        prompt_tokens=987_654_321,
        completion_tokens=54_321_000,
        cost=Decimal("4321.987654"),
        unpriced=0,
        cached_tokens=543_210_000,
        cache_write_tokens=98_700_000,
        cache_write_1h_tokens=45_600_000,
    )
    table = format_plain("model", [row, SpendRow("openai/gpt-4o", 9, 0, 900, 90, Decimal(1), 0)])
    lines = table.splitlines()
    assert max(map(len, lines)) <= 100, table
    assert lines[3].split() == [
        "anthropic/claude-sonnet-4-5",
        "123,456",
        "(1,234)",
        "988M",
        "543M",
        "98.7M",
        "(45.6M)",
        "54.3M",
        "4321.987654",
    ]
