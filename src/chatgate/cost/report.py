"""Spend reports: totals grouped by model, key, team, user or day, read from the daily
rollup (never the raw log), so a report over months costs a few hundred rows.

    rows = chatgate.spend_report(by="team", since="30d", database_url="sqlite:///chatgate.db")
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
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
    prompt_tokens: int  # every input token: fresh, cache reads and cache writes
    completion_tokens: int
    cost: Decimal  # USD, of the calls whose price was known
    unpriced: int  # successful calls whose price was unknown (not in cost)
    cached_tokens: int = 0  # cache reads (part of prompt_tokens)
    cache_write_tokens: int = 0  # cache writes, both TTLs (part of prompt_tokens)
    cache_write_1h_tokens: int = 0  # the 1-hour part of the writes
    saved: Decimal = Decimal(0)  # USD tiered routing saved against the premium tier
    # USD saved by response-cache hits, prompt-cache reads and batch discounts
    # (chatgate.cost.savings: recorded with each call since migration 18)
    cache_saved: Decimal = Decimal(0)
    prompt_saved: Decimal = Decimal(0)
    batch_saved: Decimal = Decimal(0)

    @property
    def by_lever(self) -> dict[str, Decimal]:
        """USD saved by each lever: tiering, the response cache, prompt caching, batch."""
        return {
            "tiering": self.saved,
            "cache hits": self.cache_saved,
            "prompt caching": self.prompt_saved,
            "batch": self.batch_saved,
        }

    def to_json(self) -> dict[str, object]:
        """The row as the admin API and ``chatgate spend --json`` give it (money as strings)."""
        money = ("cost", "saved", "cache_saved", "prompt_saved", "batch_saved")
        return {**asdict(self), **{name: str(getattr(self, name)) for name in money}}


_SUMMED = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cost_pico",
    "unpriced",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "saved_pico",
    "cache_saved_pico",
    "prompt_saved_pico",
    "batch_saved_pico",
)


_MONEY = ("cost_pico", "saved_pico", "cache_saved_pico", "prompt_saved_pico", "batch_saved_pico")


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
    """Spend from the daily rollup grouped ``by`` model, key, team, user or day, since
    ``since`` (``"7d"``, ``"4w"``, ``"3m"`` or a date), from ``database_url`` or ``engine``."""
    if by not in GROUPS:
        raise InvalidRequestError(f"by={by!r}: one of {', '.join(GROUPS)}", param="by")
    start = parse_since(since)
    column = SPEND_DAILY.c[GROUPS[by]]
    sums = [func.sum(SPEND_DAILY.c[name]) for name in _SUMMED]
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
    report = []
    for group, *values in rows:
        totals = dict(zip(_SUMMED, map(int, values), strict=True))
        usd = [from_pico(totals.pop(name)) for name in _MONEY]
        name = str(group) if group not in (None, "") else "(none)"
        report.append(SpendRow(name, **totals, cost=usd[0], saved=usd[1], cache_saved=usd[2],
                               prompt_saved=usd[3], batch_saved=usd[4]))  # fmt: skip
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
