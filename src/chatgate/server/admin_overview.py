"""Spend and traffic over time, for the admin API and the console's Overview.

GET /admin/overview   ?bucket=hour|day|month (default day)
                      &by=model|key|team|user|tag (default model; a call with two tags
                      counts in both stacks, one with none under "(none)")
                      &since=, &until= (as /admin/logs; default 24h, 30d, 365d by bucket)

Day and month buckets cover whole UTC days and read each day's statistics (``day_stats``:
a day not computed yet is listed in ``pending_days`` and counts zero until it is); hour
buckets (at most 3 days) read closed hours' statistics (``hour_stats``; the day of an hour
not computed yet is in ``pending_days``) and the rest from the spend log. The top 8 groups
get a series each, the rest one "(other)" series. Traffic: requests, errors, cache hits,
retried requests, requests a fallback group answered, and p50/p95 latency and time to first
token (a month's are its days' values weighted by their requests). Saved: USD per
bucket by lever (tier routing, response-cache hits, prompt-cache reads, batch discounts), as
each call's spend-log row recorded it (migration 18; tiering's since 16).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from chatgate.cost.budgets import from_pico
from chatgate.errors import InvalidRequestError
from chatgate.server.admin_logs import engine_of
from chatgate.server.day_stats import day_stats_for
from chatgate.server.hour_stats import hour_stats_for
from chatgate.server.log_filters import Window, window
from chatgate.server.overview_days import OTHER, SAVED
from chatgate.server.overview_hours import BY, TOP, hour_label, hour_series
from chatgate.server.state import GatewayState

__all__ = ["overview"]

_DEFAULT_SINCE = {"hour": "24h", "day": "30d", "month": "365d"}
_MAX_HOURS = 72
_COUNTS = ("requests", "errors", "cache_hits", "retried", "fallbacks")
_PCTS = ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms")


def _query(params: Mapping[str, str]) -> tuple[str, str, Window]:
    bucket = params.get("bucket", "day")
    if bucket not in _DEFAULT_SINCE:
        raise InvalidRequestError("bucket: hour, day or month", param="bucket")
    by = params.get("by", "model")
    if by not in BY:
        raise InvalidRequestError("by: model, key, team, user or tag", param="by")
    unknown = sorted(set(params) - {"bucket", "by", "since", "until"})
    if unknown:
        raise InvalidRequestError(
            f"{unknown[0]}: unknown parameter; parameters: bucket, by, since, until",
            param=unknown[0],
        )
    span = window(params, default=_DEFAULT_SINCE[bucket])
    if bucket == "hour" and span.until - span.since > _MAX_HOURS * 3600:
        raise InvalidRequestError(
            f"since: hour buckets cover at most {_MAX_HOURS} hours; use day buckets",
            param="since",
        )
    return bucket, by, span


def _days(span: Window) -> list[dt.date]:
    first, last = span.days
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _labels(bucket: str, span: Window) -> list[str]:
    """Every bucket of the window, oldest first, so an idle one shows as zero."""
    if bucket == "hour":
        hours = range(int(span.since // 3600), int((span.until - 1e-6) // 3600) + 1)
        return [hour_label(h) for h in hours]
    return list(dict.fromkeys(_day_label(bucket, d) for d in _days(span)))


def _day_label(bucket: str, day: dt.date) -> str:
    return f"{day:%Y-%m}" if bucket == "month" else day.isoformat()


def _day_spend(
    rows: Sequence[dict[str, Any]], bucket: str, labels: Sequence[str]
) -> list[dict[str, Any]]:
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        totals[row["name"]] += row["cost_pico"]
    top = [n for n, _ in sorted(totals.items(), key=lambda kv: -kv[1]) if n != OTHER][:TOP]
    index = {label: i for i, label in enumerate(labels)}
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(labels))
    for row in rows:
        name = row["name"] if row["name"] in top else OTHER
        series[name][index[_day_label(bucket, row["day"])]] += float(from_pico(row["cost_pico"]))
    return [{"name": n, "values": series[n]} for n in [*top, OTHER] if n in series]


def _day_traffic(
    rows: Sequence[dict[str, Any]], bucket: str, labels: Sequence[str]
) -> dict[str, list[Any]]:
    n = len(labels)
    out: dict[str, list[Any]] = {k: [0] * n for k in _COUNTS} | {k: [None] * n for k in _PCTS}
    weights: dict[tuple[str, int], float] = defaultdict(float)
    index = {label: i for i, label in enumerate(labels)}
    for row in rows:
        i = index[_day_label(bucket, row["day"])]
        for k in _COUNTS:
            out[k][i] += row[k]
        for k in _PCTS:  # a month: its days' values weighted by their requests
            if row[k] is not None and row["requests"]:
                out[k][i] = (out[k][i] or 0.0) + row[k] * row["requests"]
                weights[(k, i)] += row["requests"]
    for (k, i), weight in weights.items():
        out[k][i] /= weight
    return out


def _day_saved(
    rows: Sequence[dict[str, Any]], bucket: str, labels: Sequence[str]
) -> dict[str, list[float]]:
    out = {lever: [0.0] * len(labels) for lever in SAVED}
    index = {label: i for i, label in enumerate(labels)}
    for row in rows:
        i = index[_day_label(bucket, row["day"])]
        for lever, (column, _) in SAVED.items():
            out[lever][i] += float(from_pico(row[column]))
    return out


async def overview(state: GatewayState, params: Mapping[str, str]) -> dict[str, Any]:
    bucket, by, span = _query(params)
    if state.services.spend is not None:
        await state.services.spend.flush()
    labels = _labels(bucket, span)
    engine = engine_of(state)
    pending: list[dt.date] = []
    if bucket == "hour":
        rows, pending = await hour_stats_for(engine).rows(span, by)
        spend, traffic, saved = hour_series(rows, by, int(span.since // 3600), len(labels))
    else:
        rows, pending = await day_stats_for(engine).rows(_days(span), ("all", by))
        spend = _day_spend([r for r in rows if r["dim"] == by], bucket, labels)
        whole = [r for r in rows if r["dim"] == "all"]
        traffic = _day_traffic(whole, bucket, labels)
        saved = _day_saved(whole, bucket, labels)
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
        "saved": saved,
        "budgets": budgets,
        # days whose statistics are being computed (zero until then): ask again shortly
        "pending_days": [d.isoformat() for d in pending],
        "totals": {
            "cost": round(sum(sum(s["values"]) for s in spend), 10),
            "requests": requests,
            "errors": sum(traffic["errors"]),
            "cache_hit_rate": sum(traffic["cache_hits"]) / requests if requests else None,
            "retried": sum(traffic["retried"]),
            "fallbacks": sum(traffic["fallbacks"]),
            "saved": {lever: round(sum(values), 10) for lever, values in saved.items()},
        },
    }
