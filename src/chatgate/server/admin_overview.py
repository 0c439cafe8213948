"""Spend and traffic over time, for the admin API and the console's Overview.

GET /admin/overview   ?bucket=hour|day|month (default day)
                      &by=model|key|team|user (default model)
                      &since=, &until= (as /admin/logs; default 24h, 30d, 365d by bucket)

Spend comes from the daily rollup (``spend_daily``) for day and month buckets and from the
log for hours; the top 8 groups get a series each, the rest one "(other)" series. Traffic
(requests, errors, p50/p95 latency and time to first token, cache hits, retries) comes from
``spend_log`` over the same window, bounded by ``day`` so PostgreSQL reads only the window's
partitions. Percentiles are computed by PostgreSQL (``percentile_cont``); on SQLite, whose
databases are small, in Python.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, cast, desc, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.cost.budgets import from_pico
from chatgate.errors import InvalidRequestError
from chatgate.server.admin_logs import engine_of
from chatgate.server.log_filters import Window, window
from chatgate.server.state import GatewayState
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG

__all__ = ["overview"]

_BY = {"model": "model", "key": "key_id", "team": "team_id", "user": "user_id"}
_DEFAULT_SINCE = {"hour": "24h", "day": "30d", "month": "365d"}
_MAX_HOURS = 24 * 14
TOP = 8
_OTHER = "(other)"


def _bucket(dialect: str, bucket: str, daily: bool) -> ColumnElement[Any]:
    """The bucket's SQL label: hour -> unix hour number, day -> date, month -> 'YYYY-MM'."""
    if bucket == "hour":
        hours = SPEND_LOG.c.ts / 3600
        return func.floor(hours) if dialect == "postgresql" else cast(hours, Integer)
    day = SPEND_DAILY.c.day if daily else SPEND_LOG.c.day
    if bucket == "day":
        return day
    if dialect == "postgresql":
        return func.to_char(day, "YYYY-MM")
    return func.strftime("%Y-%m", day)


def _label(bucket: str, value: Any) -> str:
    if bucket == "hour":
        return dt.datetime.fromtimestamp(int(value) * 3600, dt.UTC).strftime("%Y-%m-%d %H:00")
    return str(value)[: 7 if bucket == "month" else 10]


def _labels(bucket: str, span: Window) -> list[str]:
    """Every bucket of the window, oldest first, so an idle one shows as zero."""
    out: list[str] = []
    if bucket == "hour":
        for hour in range(int(span.since // 3600), int((span.until - 1e-6) // 3600) + 1):
            out.append(_label("hour", hour))
        return out
    first, last = span.days
    day = first
    while day <= last:
        label = _label(bucket, day.isoformat())
        if not out or out[-1] != label:
            out.append(label)
        day += dt.timedelta(days=1)
    return out


def _query(params: Mapping[str, str]) -> tuple[str, str, Window]:
    bucket = params.get("bucket", "day")
    if bucket not in _DEFAULT_SINCE:
        raise InvalidRequestError("bucket: hour, day or month", param="bucket")
    by = params.get("by", "model")
    if by not in _BY:
        raise InvalidRequestError("by: model, key, team or user", param="by")
    unknown = sorted(set(params) - {"bucket", "by", "since", "until"})
    if unknown:
        raise InvalidRequestError(
            f"{unknown[0]}: unknown parameter; parameters: bucket, by, since, until",
            param=unknown[0],
        )
    span = window(params, default=_DEFAULT_SINCE[bucket])
    if bucket == "hour" and span.until - span.since > _MAX_HOURS * 3600:
        raise InvalidRequestError(
            f"since: hour buckets cover at most {_MAX_HOURS // 24} days; use day buckets",
            param="since",
        )
    return bucket, by, span


async def _spend(
    conn: AsyncConnection, bucket: str, by: str, span: Window, labels: Sequence[str]
) -> list[dict[str, Any]]:
    daily = bucket != "hour"
    table = SPEND_DAILY if daily else SPEND_LOG
    group = func.coalesce(table.c[_BY[by]], "")
    first, last = span.days
    where = [table.c.day >= first, table.c.day <= last]
    if not daily:
        where += [SPEND_LOG.c.ts >= span.since, SPEND_LOG.c.ts < span.until]
    cost = func.sum(func.coalesce(table.c.cost_pico, 0))
    top_q = select(group, cost).where(*where).group_by(group).order_by(desc(cost)).limit(TOP)
    top = [row[0] for row in await conn.execute(top_q)]
    name = case({g: g for g in top}, value=group, else_=_OTHER) if top else group
    b = _bucket(conn.dialect.name, bucket, daily)
    rows = await conn.execute(select(b, name, cost).where(*where).group_by(b, name))
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(labels))
    index = {label: i for i, label in enumerate(labels)}
    for at, who, pico in rows:
        i = index.get(_label(bucket, at))
        if i is not None:
            series[who or "(none)"][i] += float(from_pico(int(pico or 0)))
    order = [*(g or "(none)" for g in top), _OTHER]
    return [{"name": n, "values": series[n]} for n in order if n in series]


def _percentiles(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[18]


async def _traffic(
    conn: AsyncConnection, bucket: str, span: Window, labels: Sequence[str]
) -> dict[str, Any]:
    c = SPEND_LOG.c
    first, last = span.days
    where = [c.day >= first, c.day <= last, c.ts >= span.since, c.ts < span.until]
    b = _bucket(conn.dialect.name, bucket, False)
    counts = [
        func.count(),
        func.count(c.error),
        func.sum(case((c.cache_hit, 1), else_=0)),
        func.sum(case((c.attempts > 1, 1), else_=0)),
    ]
    n = len(labels)
    out: dict[str, list[Any]] = {
        k: [0] * n for k in ("requests", "errors", "cache_hits", "retried")
    } | {k: [None] * n for k in ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms")}
    index = {label: i for i, label in enumerate(labels)}
    if conn.dialect.name == "postgresql":
        pct = [
            func.percentile_cont(q).within_group(col)
            for col in (c.latency_ms, c.ttft_ms)
            for q in (0.5, 0.95)
        ]
        for row in await conn.execute(select(b, *counts, *pct).where(*where).group_by(b)):
            i = index.get(_label(bucket, row[0]))
            if i is None:
                continue
            for k, v in zip(out, row[1:], strict=True):
                out[k][i] = v if v is None or k.endswith("_ms") else int(v)
        return out
    for row in await conn.execute(select(b, *counts).where(*where).group_by(b)):
        i = index.get(_label(bucket, row[0]))
        if i is not None:
            for k, v in zip(("requests", "errors", "cache_hits", "retried"), row[1:], strict=True):
                out[k][i] = int(v or 0)
    samples: dict[tuple[int, str], list[float]] = defaultdict(list)
    for at, latency, ttft in await conn.execute(
        select(b, c.latency_ms, c.ttft_ms).where(*where).limit(200_000)
    ):
        i = index.get(_label(bucket, at))
        if i is not None:
            for name, v in (("latency", latency), ("ttft", ttft)):
                if v is not None:
                    samples[(i, name)].append(float(v))
    for (i, name), values in samples.items():
        out[f"{name}_p50_ms"][i], out[f"{name}_p95_ms"][i] = _percentiles(sorted(values))
    return out


async def _saved(conn: AsyncConnection, span: Window) -> Decimal:
    """Dollars the cache saved, estimated: each hit's tokens at its model's average paid
    price per token in the window (a hit itself costs nothing)."""
    c = SPEND_LOG.c
    first, last = span.days
    tokens = func.sum(c.prompt_tokens + c.completion_tokens)
    query = (
        select(c.model, c.cache_hit, tokens, func.sum(func.coalesce(c.cost_pico, 0)))
        .where(c.day >= first, c.day <= last, c.ts >= span.since, c.ts < span.until)
        .group_by(c.model, c.cache_hit)
    )
    paid: dict[str, tuple[int, int]] = {}
    hit: dict[str, int] = {}
    for model, was_hit, n, pico in await conn.execute(query):
        if was_hit:
            hit[model] = int(n or 0)
        else:
            paid[model] = (int(n or 0), int(pico or 0))
    saved = 0.0
    for model, n in hit.items():
        paid_tokens, paid_pico = paid.get(model, (0, 0))
        if paid_tokens:
            saved += n * paid_pico / paid_tokens
    return from_pico(int(saved))


async def overview(state: GatewayState, params: Mapping[str, str]) -> dict[str, Any]:
    bucket, by, span = _query(params)
    if state.services.spend is not None:
        await state.services.spend.flush()
    labels = _labels(bucket, span)
    async with engine_of(state).connect() as conn:
        spend = await _spend(conn, bucket, by, span, labels)
        traffic = await _traffic(conn, bucket, span, labels)
        saved = await _saved(conn, span)
    requests = sum(traffic["requests"])
    budgets = [
        {"scope": b.scope, "subject": b.subject, "limit": str(b.limit), "window": b.window}
        for b in state.config.general_settings.budgets
    ]
    return {
        "bucket": bucket,
        "by": by,
        "buckets": labels,
        "spend": spend,
        "traffic": traffic,
        "budgets": budgets,
        "totals": {
            "cost": round(sum(sum(s["values"]) for s in spend), 10),
            "requests": requests,
            "errors": sum(traffic["errors"]),
            "cache_hit_rate": sum(traffic["cache_hits"]) / requests if requests else None,
            "cache_saved": str(saved),
            "retried": sum(traffic["retried"]),
        },
    }
