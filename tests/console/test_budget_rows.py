"""How /admin/budgets reads one budget's counter: its share used and the alerts crossed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from chatgate.cost.budgets import Budget, to_pico
from chatgate.server.admin_budgets import budget_row

NOW = dt.datetime(2026, 12, 5, 14, 0, tzinfo=dt.UTC).timestamp()


def test_alerts_cross_at_their_thresholds_and_the_period_resets_at_midnight() -> None:
    budget = Budget("team", Decimal(10), "daily", "blue", (Decimal("0.5"), Decimal("0.9")))
    row = budget_row(budget, "blue", "config", to_pico(Decimal(6)), to_pico(Decimal(1)), NOW)
    assert row["budget_id"] == "team:blue:daily"
    assert (row["spent"], row["reserved"], row["used"]) == ("6", "1", 0.6)
    assert row["alerts"] == [{"at": "0.5", "crossed": True}, {"at": "0.9", "crossed": False}]
    assert (row["period"], row["resets_at"]) == ("2026-12-05", "2026-12-06T00:00:00+00:00")


def test_a_zero_budget_is_used_up_by_any_spend_and_a_lifetime_one_never_resets() -> None:
    budget = Budget("key", Decimal(0), "lifetime", "k")
    assert budget_row(budget, "k", "key", 0, 0, NOW)["used"] == 0
    spent = budget_row(budget, "k", "key", 1, 0, NOW)
    assert spent["used"] == 1
    assert spent["resets_at"] is None
