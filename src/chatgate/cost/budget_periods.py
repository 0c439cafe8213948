"""A budget's windows (daily and monthly in UTC, or lifetime) and what is reported about one
window's period: its state, and the alerts fired as its spend crosses a threshold."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = ["BudgetAlert", "BudgetState", "Window", "period_of"]

Window = Literal["daily", "monthly", "lifetime"]


def period_of(window: Window, now: float) -> tuple[str, dt.datetime | None]:
    """The window's current period key and when it resets (UTC)."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    if window == "daily":
        nxt = today + dt.timedelta(days=1)
        return today.isoformat(), dt.datetime.combine(nxt, dt.time(), dt.UTC)
    if window == "monthly":
        year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
        return f"{today:%Y-%m}", dt.datetime(year, month, 1, tzinfo=dt.UTC)
    return "all", None


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    budget_id: str
    period: str
    threshold: Decimal
    spent: Decimal
    limit: Decimal
    resets_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class BudgetState:
    budget_id: str
    period: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    resets_at: dt.datetime | None

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.spent - self.reserved, Decimal(0))
