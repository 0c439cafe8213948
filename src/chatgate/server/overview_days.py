"""One day's statistics for the Overview, computed from the spend log and the daily rollup
(``day_stats`` keeps them).

A 30-day chart on 10 million calls cannot scan them on every view, and percentiles cannot
be summed from the rollup. So each day's numbers (requests, errors, cache hits, retries,
fallbacks, cost, the savings by lever, p50/p95 latency and time to first token, and the 100
most spent models, keys, teams, users and tags) are computed with a few grouped queries on
that day's rows alone (one partition on PostgreSQL). A call's tags are one comma-separated
column: grouped by that text (a few distinct sets a day), then split here, so a call with
two tags counts under both.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, desc, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.store.schema.spend import LEVERS, SPEND_DAILY, SPEND_LOG

__all__ = [
    "DIMENSIONS",
    "NO_TAG",
    "OTHER",
    "SAVED",
    "SETTLE_S",
    "TOP_PER_DAY",
    "day_rows",
    "settled",
    "split_tags",
]

SETTLE_S = 3600.0
TOP_PER_DAY = 100
DIMENSIONS = {"key": "key_id", "team": "team_id", "user": "user_id"}
OTHER = "(other)"
NO_TAG = "(none)"
# console_daily's column of each lever's saving, and spend_log's it sums
SAVED = {
    "tier": ("tier_saved_pico", "saved_pico"),
    **{lever: (f"{lever}_saved_pico", f"{lever}_saved_pico") for lever in LEVERS},
}
_COUNTS = (
    "requests",
    "errors",
    "cost_pico",
    "cache_hits",
    "retried",
    "hit_tokens",
    "paid_tokens",
    "fallbacks",
    *(stored for stored, _ in SAVED.values()),
)
_PCTS = ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms")


def _row(day: dt.date, dim: str, name: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"day": day, "dim": dim, "name": name}
    row.update({k: int(values.get(k) or 0) for k in _COUNTS})
    row.update({k: values.get(k) for k in _PCTS})
    return row


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def _percentiles(conn: AsyncConnection, day: dt.date) -> dict[str, float | None]:
    c = SPEND_LOG.c
    where = c.day == day
    if conn.dialect.name == "postgresql":
        cols = [
            func.percentile_cont(q).within_group(col)
            for col in (c.latency_ms, c.ttft_ms)
            for q in (0.5, 0.95)
        ]
        row = (await conn.execute(select(*cols).where(where))).one()
        return dict(zip(_PCTS, row, strict=True))
    # SQLite: a database for one machine's traffic; the day's values fit in memory
    rows = (await conn.execute(select(c.latency_ms, c.ttft_ms).where(where))).all()
    latency = sorted(r[0] for r in rows if r[0] is not None)
    ttft = sorted(r[1] for r in rows if r[1] is not None)
    return dict(
        zip(
            _PCTS,
            (_pct(latency, 0.5), _pct(latency, 0.95), _pct(ttft, 0.5), _pct(ttft, 0.95)),
            strict=True,
        )
    )


async def _by_model(conn: AsyncConnection, day: dt.date) -> list[dict[str, Any]]:
    c = SPEND_LOG.c
    tokens = c.prompt_tokens + c.completion_tokens
    query = (
        select(
            c.model,
            func.count(),
            func.count(c.error),
            func.sum(func.coalesce(c.cost_pico, 0)),
            func.sum(case((c.cache_hit, 1), else_=0)),
            func.sum(case((c.attempts > 1, 1), else_=0)),
            func.sum(case((c.cache_hit, tokens), else_=0)),
            func.sum(case((c.cache_hit, 0), else_=tokens)),
            func.sum(case((c.fallback, 1), else_=0)),
            *(func.sum(c[logged]) for _, logged in SAVED.values()),
        )
        .where(c.day == day)
        .group_by(c.model)
    )
    return [
        _row(day, "model", model, **dict(zip(_COUNTS, values, strict=True)))
        for model, *values in await conn.execute(query)
    ]


async def _top(conn: AsyncConnection, day: dt.date, dim: str, total: int) -> list[dict[str, Any]]:
    """The day's most spent subjects of ``dim`` from the rollup, the rest as "(other)"."""
    c = SPEND_DAILY.c
    cost = func.sum(c.cost_pico)
    query = (
        select(c[DIMENSIONS[dim]], cost, func.sum(c.requests), func.sum(c.errors))
        .where(c.day == day)
        .group_by(c[DIMENSIONS[dim]])
        .order_by(desc(cost))
        .limit(TOP_PER_DAY)
    )
    rows = [
        _row(day, dim, name or "(none)", cost_pico=pico, requests=n, errors=e)
        for name, pico, n, e in await conn.execute(query)
    ]
    rest = total - sum(r["cost_pico"] for r in rows)
    if len(rows) == TOP_PER_DAY and rest > 0:
        rows.append(_row(day, dim, OTHER, cost_pico=rest))
    return rows


def split_tags(tags: str | None) -> list[str]:
    """A call's tags, each once (a client may repeat one), or ``NO_TAG``."""
    return list(dict.fromkeys(t for t in (tags or "").split(",") if t)) or [NO_TAG]


async def _top_tags(conn: AsyncConnection, day: dt.date) -> list[dict[str, Any]]:
    """The day's most spent tags; a call counts under each of its tags."""
    c = SPEND_LOG.c
    query = (
        select(c.tags, func.sum(func.coalesce(c.cost_pico, 0)), func.count(), func.count(c.error))
        .where(c.day == day)
        .group_by(c.tags)
    )
    sums: dict[str, list[int]] = {}
    for tags, pico, n, errors in await conn.execute(query):
        for tag in split_tags(tags):
            acc = sums.setdefault(tag, [0, 0, 0])
            acc[0] += int(pico or 0)
            acc[1] += n
            acc[2] += errors
    ranked = sorted(sums.items(), key=lambda kv: -kv[1][0])
    rows = [
        _row(day, "tag", tag, cost_pico=pico, requests=n, errors=e)
        for tag, (pico, n, e) in ranked[:TOP_PER_DAY]
    ]
    rest = ranked[TOP_PER_DAY:]
    if rest:
        rows.append(_row(day, "tag", OTHER, cost_pico=sum(v[0] for _, v in rest)))
    return rows


async def day_rows(conn: AsyncConnection, day: dt.date) -> list[dict[str, Any]]:
    """Every console_daily row of ``day``, computed now."""
    models = await _by_model(conn, day)
    whole = _row(
        day,
        "all",
        "*",
        **{k: sum(m[k] for m in models) for k in _COUNTS},
        **await _percentiles(conn, day),
    )
    out = [whole, *models]
    for dim in DIMENSIONS:
        out += await _top(conn, day, dim, whole["cost_pico"])
    return out + await _top_tags(conn, day)


def settled(day: dt.date, now: float) -> bool:
    """Over long enough that no late record can still land in it: stored, never recomputed."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()
    return end + SETTLE_S <= now
