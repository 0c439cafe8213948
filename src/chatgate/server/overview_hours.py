"""The Overview's hour buckets, read live from the spend log (a window of at most a few
days, bounded by ``day`` so PostgreSQL reads only those partitions)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, cast, desc, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.cost.budgets import from_pico
from chatgate.server.log_filters import Window
from chatgate.server.overview_days import OTHER, SAVED, split_tags
from chatgate.store.schema.spend import SPEND_LOG

__all__ = ["BY", "TOP", "hour_label", "hour_spend", "hour_traffic"]

BY = {"model": "model", "key": "key_id", "team": "team_id", "user": "user_id", "tag": "tags"}
TOP = 8
_COUNTS = ("requests", "errors", "cache_hits", "retried", "fallbacks")
_PCTS = ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms")
c = SPEND_LOG.c


def _hour(dialect: str) -> ColumnElement[Any]:
    hours = c.ts / 3600
    return func.floor(hours) if dialect == "postgresql" else cast(hours, Integer)


def hour_label(value: Any) -> str:
    return dt.datetime.fromtimestamp(int(value) * 3600, dt.UTC).strftime("%Y-%m-%d %H:00")


def _where(span: Window) -> list[ColumnElement[bool]]:
    first, last = span.days
    return [c.day >= first, c.day <= last, c.ts >= span.since, c.ts < span.until]


async def _tag_spend(
    conn: AsyncConnection, span: Window, labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Grouped by the tags' text (a few thousand distinct sets an hour at most), split here:
    a call counts under each of its tags. Summed in integer picodollars, each hour's label
    formatted once: a 3-day window returns some 100,000 groups at scale."""
    hour = _hour(conn.dialect.name)
    cost = func.sum(func.coalesce(c.cost_pico, 0))
    index = {label: i for i, label in enumerate(labels)}
    slots: dict[Any, int | None] = {}
    picos: dict[str, list[int]] = defaultdict(lambda: [0] * len(labels))
    query = select(hour, c.tags, cost).where(*_where(span)).group_by(hour, c.tags)
    for at, tags, pico in await conn.execute(query):
        if at not in slots:
            slots[at] = index.get(hour_label(at))
        i = slots[at]
        if i is not None:
            for tag in split_tags(tags):
                picos[tag][i] += int(pico or 0)
    ranked = sorted(picos, key=lambda t: -sum(picos[t]))
    rest = [sum(v) for v in zip(*(picos[t] for t in ranked[TOP:]), strict=True)]
    named = [(t, picos[t]) for t in ranked[:TOP]] + ([(OTHER, rest)] if rest else [])
    return [{"name": t, "values": [float(from_pico(p)) for p in v]} for t, v in named]


async def hour_spend(
    conn: AsyncConnection, by: str, span: Window, labels: Sequence[str]
) -> list[dict[str, Any]]:
    if by == "tag":
        return await _tag_spend(conn, span, labels)
    group = func.coalesce(c[BY[by]], "")
    cost = func.sum(func.coalesce(c.cost_pico, 0))
    where = _where(span)
    top_q = select(group, cost).where(*where).group_by(group).order_by(desc(cost)).limit(TOP)
    top = [row[0] for row in await conn.execute(top_q)]
    name = case({g: g for g in top}, value=group, else_=OTHER) if top else group
    hour = _hour(conn.dialect.name)
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(labels))
    index = {label: i for i, label in enumerate(labels)}
    for at, who, pico in await conn.execute(
        select(hour, name, cost).where(*where).group_by(hour, name)
    ):
        i = index.get(hour_label(at))
        if i is not None:
            series[who or "(none)"][i] += float(from_pico(int(pico or 0)))
    order = [*(g or "(none)" for g in top), OTHER]
    return [{"name": n, "values": series[n]} for n in order if n in series]


def _p50_p95(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[18]


async def hour_traffic(
    conn: AsyncConnection, span: Window, labels: Sequence[str]
) -> tuple[dict[str, list[Any]], dict[str, list[float]]]:
    """Per hour: the traffic, and the USD each lever saved (in the same scan of the rows)."""
    hour = _hour(conn.dialect.name)
    counts = [
        func.count(),
        func.count(c.error),
        func.sum(case((c.cache_hit, 1), else_=0)),
        func.sum(case((c.attempts > 1, 1), else_=0)),
        func.sum(case((c.fallback, 1), else_=0)),
    ]
    saved_sums = [func.sum(c[logged]) for _, logged in SAVED.values()]
    n = len(labels)
    out: dict[str, list[Any]] = {k: [0] * n for k in _COUNTS} | {k: [None] * n for k in _PCTS}
    saved = {lever: [0.0] * n for lever in SAVED}
    index = {label: i for i, label in enumerate(labels)}
    pg = conn.dialect.name == "postgresql"
    pct = [
        func.percentile_cont(q).within_group(col)
        for col in (c.latency_ms, c.ttft_ms)
        for q in (0.5, 0.95)
    ]
    columns = (hour, *counts, *saved_sums, *(pct if pg else ()))
    query = select(*columns).where(*_where(span)).group_by(hour)
    n_counts, n_sums = len(_COUNTS), len(_COUNTS) + len(SAVED)
    for at, *values in await conn.execute(query):
        i = index.get(hour_label(at))
        if i is None:
            continue
        tallies, picos, pcts = values[:n_counts], values[n_counts:n_sums], values[n_sums:]
        for k, v in zip(_COUNTS, tallies, strict=True):
            out[k][i] = int(v or 0)
        for lever, pico in zip(SAVED, picos, strict=True):
            saved[lever][i] = float(from_pico(int(pico or 0)))
        for k, v in zip(_PCTS if pg else (), pcts, strict=True):
            out[k][i] = v
    if not pg:
        await _sqlite_percentiles(conn, span, index, out)
    return out, saved


async def _sqlite_percentiles(
    conn: AsyncConnection, span: Window, index: dict[str, int], out: dict[str, list[Any]]
) -> None:
    """SQLite (one machine's traffic): the window's values sorted here."""
    hour = _hour(conn.dialect.name)
    samples: dict[tuple[int, str], list[float]] = defaultdict(list)
    rows = select(hour, c.latency_ms, c.ttft_ms).where(*_where(span))
    for at, latency, ttft in await conn.execute(rows):
        i = index.get(hour_label(at))
        for name, v in (("latency", latency), ("ttft", ttft)):
            if i is not None and v is not None:
                samples[(i, name)].append(float(v))
    for (i, name), values in samples.items():
        out[f"{name}_p50_ms"][i], out[f"{name}_p95_ms"][i] = _p50_p95(sorted(values))
