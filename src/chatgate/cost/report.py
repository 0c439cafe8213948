"""Spend reports: totals grouped by model, key, team, user or day, read from the daily
rollup (never the raw log), so a report over months costs a few hundred rows.

    rows = chatgate.spend_report(by="team", since="30d", database_url="sqlite:///chatgate.db")
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.cost.budgets import from_pico
from chatgate.errors import InvalidRequestError
from chatgate.store.engine import DEFAULT_URL, create_engine
from chatgate.store.migrations import migrate
from chatgate.store.schema.spend import SPEND_DAILY

__all__ = ["GROUPS", "SpendRow", "aspend_report", "parse_since", "spend_report"]

GroupBy = Literal["model", "key", "team", "user", "day"]
GROUPS: dict[str, str] = {
    "model": "model",
    "key": "key_id",
    "team": "team_id",
    "user": "user_id",
    "day": "day",
}
_SINCE = re.compile(r"^(\d+)([dwm])$")


@dataclass(frozen=True, slots=True)
class SpendRow:
    group: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal  # USD, of the calls whose price was known
    unpriced: int  # successful calls whose price was unknown (not in cost)


def parse_since(since: str | dt.date, today: dt.date | None = None) -> dt.date:
    """'7d' (the last 7 days, today included), '2w', '3m' (30-day months), or a date."""
    today = today or dt.datetime.now(dt.UTC).date()
    if isinstance(since, dt.date):
        return since
    match = _SINCE.match(since.strip())
    if match:
        days = int(match[1]) * {"d": 1, "w": 7, "m": 30}[match[2]]
        return today - dt.timedelta(days=max(days, 1) - 1)
    try:
        return dt.date.fromisoformat(since)
    except ValueError:
        raise InvalidRequestError(
            f"since={since!r}: use a span like 7d, 2w, 3m or a date like 2026-11-01",
            param="since",
        ) from None


async def aspend_report(
    by: GroupBy = "model",
    since: str | dt.date = "7d",
    *,
    database_url: str | None = None,
    engine: AsyncEngine | None = None,
) -> list[SpendRow]:
    if by not in GROUPS:
        raise InvalidRequestError(f"by={by!r}: one of {', '.join(GROUPS)}", param="by")
    start = parse_since(since)
    column = SPEND_DAILY.c[GROUPS[by]]
    sums = [
        func.sum(SPEND_DAILY.c[name])
        for name in (
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "cost_pico",
            "unpriced",
        )
    ]
    query = select(column, *sums).where(SPEND_DAILY.c.day >= start).group_by(column)
    owned = engine is None
    engine = engine or create_engine(database_url or DEFAULT_URL)
    try:
        if owned:
            await migrate(engine)  # a database nothing was logged to yet has no tables
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    finally:
        if owned:
            await engine.dispose()
    report = [
        SpendRow(
            str(r[0]) if r[0] not in (None, "") else "(none)",
            int(r[1]),
            int(r[2]),
            int(r[3]),
            int(r[4]),
            from_pico(int(r[5])),
            int(r[6]),
        )
        for r in rows
    ]
    if by == "day":
        return sorted(report, key=lambda row: row.group)
    return sorted(report, key=lambda row: (-row.cost, row.group))


def spend_report(
    by: GroupBy = "model",
    since: str | dt.date = "7d",
    *,
    database_url: str | None = None,
) -> list[SpendRow]:
    """Spend per ``by`` since ``since`` (see ``aspend_report``), blocking."""
    from chatgate.transport.loop_thread import run_sync

    return run_sync(aspend_report(by, since, database_url=database_url))
