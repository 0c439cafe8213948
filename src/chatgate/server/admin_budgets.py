"""Every budget in force with its use, for the admin API and the console's Budgets page.

GET /admin/budgets   the configured budgets (general_settings.budgets) and the budgets on
                     virtual keys (the 100 most spent): for each its current period,
                     limit, spent, held (reserved by calls in flight), when it resets, and
                     which alert thresholds it has crossed. A budget whose subject is "*"
                     (each key, user, team or model its own) lists its 50 most spent; a
                     tag budget always names its tag: one row.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.cost.budgets import Budget, Window, from_pico, period_of
from chatgate.server.admin_logs import engine_of
from chatgate.server.state import GatewayState
from chatgate.store.schema.budgets import BUDGET_COUNTERS
from chatgate.store.schema.keys import VIRTUAL_KEYS

__all__ = ["budget_row", "budgets_status"]

_EACH_TOP = 50
_KEYS_TOP = 100
C = BUDGET_COUNTERS.c


def budget_row(
    budget: Budget, subject: str, source: str, spent: int, held: int, now: float
) -> dict[str, Any]:
    period, resets = period_of(budget.window, now)
    used = from_pico(spent)
    share = used / budget.limit if budget.limit else (Decimal(1) if used else Decimal(0))
    return {
        "budget_id": f"{budget.scope}:{subject}:{budget.window}",
        "source": source,
        "scope": budget.scope,
        "subject": subject,
        "window": budget.window,
        "period": period,
        "limit": str(budget.limit),
        "spent": str(used),
        "reserved": str(from_pico(held)),
        "used": float(share),
        "resets_at": resets.isoformat() if resets else None,
        "alerts": [{"at": str(a), "crossed": share >= a} for a in budget.alerts],
    }


async def _counters(
    conn: AsyncConnection, budget_ids: Iterable[str], period: str
) -> dict[str, tuple[int, int]]:
    ids = list(budget_ids)
    if not ids:
        return {}
    query = select(C.budget_id, C.spent_pico, C.reserved_pico).where(
        C.budget_id.in_(ids), C.period == period
    )
    return {b: (int(s), int(r)) for b, s, r in await conn.execute(query)}


async def _each(conn: AsyncConnection, budget: Budget, now: float) -> list[tuple[str, int, int]]:
    period, _ = period_of(budget.window, now)
    prefix = f"{budget.scope}:"
    suffix = f":{budget.window}"
    query = (
        select(C.budget_id, C.spent_pico, C.reserved_pico)
        .where(C.budget_id.like(f"{prefix}%{suffix}"), C.period == period)
        .order_by(desc(C.spent_pico))
        .limit(_EACH_TOP)
    )
    rows = await conn.execute(query)
    return [(b[len(prefix) : -len(suffix)], int(s), int(r)) for b, s, r in rows]


async def _key_budgets(conn: AsyncConnection, now: float) -> list[dict[str, Any]]:
    """The key budgets most spent in their current period (at most 100), with their keys'
    limits: one query on the counters, one on the keys, whatever the number of keys."""
    windows: tuple[Window, ...] = ("daily", "monthly", "lifetime")
    periods = {w: period_of(w, now)[0] for w in windows}
    query = (
        select(C.budget_id, C.period, C.spent_pico, C.reserved_pico)
        .where(C.budget_id.like("key:%"), C.period.in_(set(periods.values())))
        .order_by(desc(C.spent_pico))
        .limit(4 * _KEYS_TOP)
    )
    counters: dict[str, tuple[Window, int, int]] = {}
    for budget_id, period, spent, held in await conn.execute(query):
        key_id, _, name = budget_id.removeprefix("key:").rpartition(":")
        window = next((w for w in windows if w == name), None)
        if window is not None and periods[window] == period and len(counters) < _KEYS_TOP:
            counters[key_id] = (window, int(spent), int(held))
    if not counters:
        return []
    keys = VIRTUAL_KEYS.c
    found = await conn.execute(
        select(keys.key_id, keys.budget_usd, keys.budget_period).where(
            keys.key_id.in_(list(counters)), keys.budget_usd.is_not(None)
        )
    )
    out = []
    for key_id, limit, window in found:
        if (window or "monthly") == counters[key_id][0]:
            budget = Budget("key", Decimal(str(limit)).normalize(), counters[key_id][0], key_id)
            out.append(
                budget_row(budget, key_id, "key", counters[key_id][1], counters[key_id][2], now)
            )
    return sorted(out, key=lambda r: -Decimal(r["spent"]))


async def budgets_status(state: GatewayState) -> dict[str, Any]:
    now = time.time()
    out: list[dict[str, Any]] = []
    async with engine_of(state).connect() as conn:
        for budget in state.services.budgets.budgets:
            if budget.scope != "global" and budget.subject == "*":
                for subject, spent, held in await _each(conn, budget, now):
                    out.append(budget_row(budget, subject, "config", spent, held, now))
                continue
            subject = "*" if budget.scope == "global" else budget.subject
            period, _ = period_of(budget.window, now)
            budget_id = f"{budget.scope}:{subject}:{budget.window}"
            spent, held = (await _counters(conn, [budget_id], period)).get(budget_id, (0, 0))
            out.append(budget_row(budget, subject, "config", spent, held, now))
        out += await _key_budgets(conn, now)
    return {"data": out}
