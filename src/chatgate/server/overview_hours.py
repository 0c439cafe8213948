"""The Overview's hour buckets: each hour's statistics computed from the spend log (bounded
by ``day`` so PostgreSQL reads only those partitions), and the chart's series built from
them, whether the hours were stored (``hour_stats``) or computed now.

An hour's rows are those of a day (``overview_days``), keyed by the hour: "all" (traffic,
exact p50/p95, savings), and per model, key, team, user or tag the cost of each subject (tags
split: a call counts under each of its tags). Stored hours keep their 100 most spent
subjects of each and the rest as "(other)"; the view then stacks the window's 8 most spent.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.cost.budgets import from_pico
from chatgate.server.overview_days import OTHER, SAVED, split_tags
from chatgate.store.schema.spend import SPEND_LOG

__all__ = [
    "BY",
    "TOP",
    "TOP_PER_HOUR",
    "hour_label",
    "hour_of",
    "hour_rows",
    "hour_series",
    "log_counts",
]

BY = {"model": "model", "key": "key_id", "team": "team_id", "user": "user_id", "tag": "tags"}
TOP = 8
TOP_PER_HOUR = 100
_COUNTS = ("requests", "errors", "cache_hits", "retried", "fallbacks")
_PCTS = ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms")
_SUMS = ("cost_pico", *(stored for stored, _ in SAVED.values()))
c = SPEND_LOG.c
Row = dict[str, Any]


def hour_of(dialect: str) -> ColumnElement[Any]:
    hours = c.ts / 3600
    return func.floor(hours) if dialect == "postgresql" else cast(hours, Integer)


def hour_label(value: Any) -> str:
    return dt.datetime.fromtimestamp(int(value) * 3600, dt.UTC).strftime("%Y-%m-%d %H:00")


def _where(since: float, until: float) -> list[ColumnElement[bool]]:
    first, last = (dt.datetime.fromtimestamp(t, dt.UTC).date() for t in (since, until))
    return [c.day >= first, c.day <= last, c.ts >= since, c.ts < until]


def _row(hour: int, dim: str, name: str, **values: Any) -> Row:
    row: Row = {"hour": hour, "dim": dim, "name": name}
    row.update({k: int(values.get(k) or 0) for k in (*_COUNTS, *_SUMS)})
    row.update({k: values.get(k) for k in _PCTS})
    return row


def _p50_p95(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[18]


async def _traffic(conn: AsyncConnection, since: float, until: float) -> dict[int, Row]:
    """Per hour with rows: the "all" row (counts, cost, savings, percentiles)."""
    hour = hour_of(conn.dialect.name)
    pg = conn.dialect.name == "postgresql"
    columns = [
        func.count(),
        func.count(c.error),
        func.sum(case((c.cache_hit, 1), else_=0)),
        func.sum(case((c.attempts > 1, 1), else_=0)),
        func.sum(case((c.fallback, 1), else_=0)),
        func.sum(func.coalesce(c.cost_pico, 0)),
        *(func.sum(c[logged]) for _, logged in SAVED.values()),
    ]
    pct = [
        func.percentile_cont(q).within_group(col)
        for col in (c.latency_ms, c.ttft_ms)
        for q in (0.5, 0.95)
    ]
    query = select(hour, *columns, *(pct if pg else ())).where(*_where(since, until))
    names = (*_COUNTS, *_SUMS, *(_PCTS if pg else ()))
    out = {
        int(at): _row(int(at), "all", "*", **dict(zip(names, values, strict=True)))
        for at, *values in await conn.execute(query.group_by(hour))
    }
    if not pg:
        await _sqlite_percentiles(conn, since, until, out)
    return out


async def _sqlite_percentiles(
    conn: AsyncConnection, since: float, until: float, out: dict[int, Row]
) -> None:
    """SQLite (one machine's traffic): the hours' values sorted here."""
    samples: dict[tuple[int, str], list[float]] = defaultdict(list)
    rows = select(hour_of("sqlite"), c.latency_ms, c.ttft_ms).where(*_where(since, until))
    for at, latency, ttft in await conn.execute(rows):
        for name, v in (("latency", latency), ("ttft", ttft)):
            if v is not None:
                samples[(int(at), name)].append(float(v))
    for (at, name), values in samples.items():
        out[at][f"{name}_p50_ms"], out[at][f"{name}_p95_ms"] = _p50_p95(sorted(values))


async def _subjects(
    conn: AsyncConnection, dim: str, since: float, until: float
) -> dict[int, dict[str, list[int]]]:
    """Per hour, each subject's [cost, requests, errors]; tags split."""
    hour = hour_of(conn.dialect.name)
    group = c.tags if dim == "tag" else func.coalesce(c[BY[dim]], "")
    sums = (func.sum(func.coalesce(c.cost_pico, 0)), func.count(), func.count(c.error))
    query = select(hour, group, *sums).where(*_where(since, until)).group_by(hour, group)
    out: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for at, value, pico, n, errors in await conn.execute(query):
        names = split_tags(value) if dim == "tag" else [value or "(none)"]
        for name in names:
            acc = out[int(at)].setdefault(name, [0, 0, 0])
            acc[0] += int(pico or 0)
            acc[1] += n
            acc[2] += errors
    return out


def _cut(hour: int, dim: str, subjects: dict[str, list[int]], top: int | None) -> list[Row]:
    ranked = sorted(subjects.items(), key=lambda kv: (-kv[1][0], kv[0]))
    kept, rest = (ranked, []) if top is None else (ranked[:top], ranked[top:])
    rows = [_row(hour, dim, name, cost_pico=p, requests=n, errors=e) for name, (p, n, e) in kept]
    if rest:
        p, n, e = (sum(v[i] for _, v in rest) for i in range(3))
        rows.append(_row(hour, dim, OTHER, cost_pico=p, requests=n, errors=e))
    return rows


async def hour_rows(
    conn: AsyncConnection, since: float, until: float, dims: Iterable[str], top: int | None
) -> list[Row]:
    """The rows of every hour in [since, until) ("all" for each, zero when idle), and per
    ``dims`` each hour's subjects: the ``top`` most spent and the rest as "(other)", or all."""
    whole = await _traffic(conn, since, until)
    hours = range(int(since // 3600), int((until - 1e-6) // 3600) + 1)
    out = [whole.get(h) or _row(h, "all", "*") for h in hours]
    for dim in dims:
        for at, subjects in sorted((await _subjects(conn, dim, since, until)).items()):
            out += _cut(at, dim, subjects, top)
    return out


async def log_counts(conn: AsyncConnection, since: float, until: float) -> dict[int, int]:
    """The spend log's rows per hour in [since, until). Bounded by ``ts`` alone: PostgreSQL
    then counts from each partition's ``ts`` index without reading the rows."""
    hour = hour_of(conn.dialect.name)
    query = select(hour, func.count()).where(c.ts >= since, c.ts < until).group_by(hour)
    return {int(at): n for at, n in await conn.execute(query)}


def _spend(rows: Sequence[Row], first: int, n: int) -> list[dict[str, Any]]:
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        totals[row["name"]] += row["cost_pico"]
    ranked = sorted((name for name in totals if name != OTHER), key=lambda t: (-totals[t], t))
    top = ranked[:TOP]
    picos: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    for row in rows:
        name = row["name"] if row["name"] in top else OTHER
        picos[name][row["hour"] - first] += row["cost_pico"]
    order = [*top, OTHER]
    return [
        {"name": t, "values": [float(from_pico(p)) for p in picos[t]]} for t in order if t in picos
    ]


def hour_series(
    rows: Sequence[Row], by: str, first: int, n: int
) -> tuple[list[dict[str, Any]], dict[str, list[Any]], dict[str, list[float]]]:
    """The spend series stacked ``by``, the traffic and the savings of the ``n`` hours from
    hour ``first``, from their rows (each hour's "all" row once)."""
    traffic: dict[str, list[Any]] = {k: [0] * n for k in _COUNTS} | {k: [None] * n for k in _PCTS}
    saved = {lever: [0.0] * n for lever in SAVED}
    for row in rows:
        if row["dim"] != "all":
            continue
        i = row["hour"] - first
        for k in _COUNTS:
            traffic[k][i] = row[k]
        for k in _PCTS:
            traffic[k][i] = row[k]
        for lever, (column, _) in SAVED.items():
            saved[lever][i] = float(from_pico(row[column]))
    spend = _spend([r for r in rows if r["dim"] == by], first, n)
    return spend, traffic, saved
