"""What each key on a page of ``GET /admin/keys?usage=true`` spent in its budget's current
period (daily, monthly; lifetime for a key with none), from the daily rollup: one query per
period for the page's keys, whatever the number of keys in the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select

from chatgate.cost.budgets import from_pico
from chatgate.server.admin_logs import engine_of
from chatgate.server.keys import KeyRecord
from chatgate.server.state import GatewayState
from chatgate.store.schema.spend import SPEND_DAILY

__all__ = ["key_usage"]


def _period_start(period: str, today: dt.date) -> dt.date:
    if period == "daily":
        return today
    if period == "monthly":
        return today.replace(day=1)
    return dt.date.min


async def key_usage(
    state: GatewayState, records: Sequence[KeyRecord], now: float
) -> dict[str, str]:
    """key_id -> USD spent in the current period (keys with no spend are left out)."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    by_period: dict[str, list[str]] = {}
    for record in records:
        period: str = "lifetime"
        if record.budget_usd is not None:
            period = record.budget_period or "monthly"
        by_period.setdefault(period, []).append(record.key_id)
    c = SPEND_DAILY.c
    out: dict[str, str] = {}
    async with engine_of(state).connect() as conn:
        for period, ids in by_period.items():
            query = (
                select(c.key_id, func.sum(c.cost_pico))
                .where(c.key_id.in_(ids), c.day >= _period_start(period, today))
                .group_by(c.key_id)
            )
            for key_id, pico in await conn.execute(query):
                out[key_id] = str(from_pico(int(pico or 0)))
    return out
