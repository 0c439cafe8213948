"""Batch discounts in the bundled price table: what provider batch runs are priced at."""

from __future__ import annotations

from decimal import Decimal

from chatgate.cost.calc import cost_of
from chatgate.cost.prices import default_table
from chatgate.types import Usage


def test_every_row_a_provider_batch_can_use_has_the_half_price_batch_discount() -> None:
    table = default_table()
    rows = [n for n in table.names() if n.startswith(("openai/", "anthropic/", "gemini/"))]
    rows = [n for n in rows if "embedding" not in n]  # batch runs take chat lines only
    assert len(rows) > 40
    missing = [n for n in rows if table.lookup(n).batch_discount != Decimal("0.5")]  # type: ignore[union-attr]
    assert missing == []


def test_batch_cost_is_half_of_input_and_output() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
    for model in ("openai/gpt-3.5-turbo", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"):
        price = default_table().lookup(model)
        assert price is not None
        live = 1000 * price.input + 500 * price.output
        assert cost_of(usage, price) == live
        assert cost_of(usage, price, batch=True) == live / 2
