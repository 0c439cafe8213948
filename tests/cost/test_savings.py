"""The savings recorded with each call, by lever: pure functions of tokens and list prices."""

from __future__ import annotations

from decimal import Decimal

from chatgate.cost.calc import cost_of
from chatgate.cost.prices import lookup_price
from chatgate.cost.savings import NONE, prompt_cache_saving, recorded_savings
from chatgate.cost.spend_wal import parse_line, wal_line
from chatgate.cost.usage import UsageRecord
from chatgate.types import Usage

SONNET = "anthropic/claude-sonnet-4-20250514"


def usage(prompt: int, completion: int, cached: int = 0) -> Usage:
    return Usage.model_validate(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
    )


def test_prompt_cache_reads_save_the_input_price_less_the_read_price() -> None:
    price = lookup_price(SONNET)
    assert price is not None
    # 3 $/M in, 0.30 $/M for reads: 1000 reads save 1000 x 2.70 $/M
    assert prompt_cache_saving(1200, 1000, price) == Decimal("0.0027")
    # above 200k tokens the long-context prices apply: 6 $/M in, 0.60 $/M reads
    assert prompt_cache_saving(250_000, 1000, price) == Decimal("0.0054")
    assert prompt_cache_saving(1200, 1000, price, batch=True) == Decimal("0.00135")
    assert prompt_cache_saving(1200, 0, price) is None


def test_a_call_with_no_lever_saves_nothing_and_looks_nothing_up() -> None:
    assert recorded_savings(usage(100, 10), "no-such/model", Decimal(1)) is NONE
    assert recorded_savings(None, None, None) is NONE


def test_a_cache_hit_saves_what_the_call_would_cost_and_nothing_else() -> None:
    used = usage(1000, 100, cached=800)
    hit = recorded_savings(used, "openai/gpt-4o", Decimal(0), cache_hit=True)
    price = lookup_price("openai/gpt-4o")
    assert price is not None
    assert hit.cache == cost_of(used, price)
    assert hit.prompt is None  # the replayed tokens' reads were the original call's saving
    told = recorded_savings(None, None, Decimal(0), cache_hit=True, cache_cost=Decimal("0.02"))
    assert told.cache == Decimal("0.02")


def test_a_batch_line_saves_the_discount_only_when_billed_at_the_batch_price() -> None:
    price = lookup_price("openai/gpt-4o")
    assert price is not None
    used = usage(1000, 500)
    batched = cost_of(used, price, batch=True)
    line = recorded_savings(used, "openai/gpt-4o", batched, batch_job=True)
    assert line.batch == cost_of(used, price) - batched == batched
    live = recorded_savings(used, "openai/gpt-4o", cost_of(used, price), batch_job=True)
    assert live.batch is None  # a job's line that ran live paid the full price


def test_usage_records_carry_the_savings_through_their_json_line() -> None:
    record = UsageRecord(
        ts=1.0,
        model="m",
        fallback=True,
        cache_saved=Decimal("0.1"),
        prompt_saved=Decimal("0.02"),
        batch_saved=Decimal("0.003"),
    )
    again = UsageRecord.from_json(record.to_json())
    assert again == record
    assert parse_line(wal_line(record)) == record
    old = b'{"ts": 1.0, "model": "m", "cost": null, "tags": []}'  # a line from before them
    assert UsageRecord.from_json(old).cache_saved is None
