"""`chatgate route-eval`: the report on a labelled set, and the shipped set's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatgate.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "bench" / "data" / "route-eval.jsonl"


def test_the_report_names_accuracy_shares_cost_and_the_prompts_sent_too_low(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "set.jsonl"
    rows = [
        {"prompt": "hello", "tier": "cheap"},
        {"prompt": "thanks a lot", "tier": "cheap"},
        {"prompt": "hi again", "tier": "premium"},  # mislabelled on purpose: sent too low
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["route-eval", str(data), "--tiers", "cheap,premium"]
    assert main([*args, "--models", "openai/gpt-4o-mini,openai/gpt-4o"]) == 0
    out = capsys.readouterr().out
    assert "accuracy: 66.7%" in out
    assert "needs-premium sent lower: 100.0%" in out
    assert "premium -> cheap: hi again" in out
    assert main([*args, "--models", "openai/gpt-4o-mini,openai/gpt-4o", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["share"] == {"cheap": 1.0, "premium": 0.0}
    assert 0 < report["saving"] < 1


def test_a_bad_line_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "set.jsonl"
    data.write_text('{"prompt": "x", "tier": "gold"}\n')
    assert main(["route-eval", str(data)]) == 2
    assert "set.jsonl:1: tier 'gold'" in capsys.readouterr().err


def test_the_shipped_set_meets_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    """At least 500 prompts; at least 60 % to the cheapest tier; at most 5 % of the prompts
    that need premium sent lower (the figures in docs/routing.md)."""
    assert len(SHIPPED.read_text().splitlines()) >= 500
    assert main(["route-eval", str(SHIPPED), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["share"]["cheap"] >= 0.60
    assert report["premium_sent_lower"] <= 0.05


def test_with_a_config_the_tiered_model_and_its_prices_are_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "chatgate.yaml"
    config.write_text(
        "model_list:\n"
        "  - {model_name: s, params: {model: openai/gpt-4o-mini, api_key: k}}\n"
        "  - {model_name: l, params: {model: openai/gpt-4o, api_key: k}}\n"
        "router_settings:\n"
        "  tiers: [{model_name: auto, tiers: [s, l], classifier: {embeddings: never}}]\n"
    )
    data = tmp_path / "set.jsonl"
    data.write_text(
        '{"prompt": "hello", "tier": "s"}\n{"prompt": "```\\ndef f(): pass\\n```", "tier": "l"}\n'
    )
    assert main(["route-eval", str(data), "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["accuracy"], report["share"]) == (1.0, {"s": 0.5, "l": 0.5})
    assert main(["route-eval", str(data), "--config", str(config), "--model", "x"]) == 2
    assert "no tiered model 'x'" in capsys.readouterr().err
