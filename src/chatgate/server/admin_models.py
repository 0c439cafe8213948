"""Every deployment's health, for the admin API and the console's Models page.

GET /admin/models   per model group, each deployment: cooldown (until when, why), half-open,
                    in flight, latency EWMA, RPM/TPM limits and what is left of them (the
                    router's live state, shared across workers when it is in Redis), and its
                    requests and error rate over the last hour (the spend log).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import func, select

from chatgate.router.state import Stats
from chatgate.server.admin_logs import engine_of
from chatgate.server.state import GatewayState
from chatgate.store.schema.spend import SPEND_LOG

__all__ = ["models_health"]

_WINDOW_S = 3600.0


def _iso(ts: float) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() if ts else None


def _used(limit: int | None, left: float | None) -> float | None:
    return None if limit is None or left is None else round(limit - left, 3)


async def _last_hour(state: GatewayState, now: float) -> dict[str, tuple[int, int]]:
    """deployment -> (requests, errors) in the last hour."""
    c = SPEND_LOG.c
    since = now - _WINDOW_S
    day = dt.datetime.fromtimestamp(since, dt.UTC).date()
    query = (
        select(c.deployment, func.count(), func.count(c.error))
        .where(c.day >= day, c.ts >= since)
        .group_by(c.deployment)
    )
    async with engine_of(state).connect() as conn:
        return {d: (int(n), int(e)) for d, n, e in await conn.execute(query) if d}


async def models_health(state: GatewayState) -> dict[str, Any]:
    router = state.models.router
    now = router.now()
    traffic = await _last_hour(state, time.time())
    groups = []
    for name, deployments in router.groups.items():
        views: list[Stats] = await router.state.view([d.id for d in deployments], now)
        rows = []
        for routed, stats in zip(deployments, views, strict=True):
            stats.settle(now)
            requests, errors = traffic.get(routed.id, (0, 0))  # the spend log keeps the id
            limits = routed.limits
            rows.append(
                {
                    "id": routed.id,
                    "model": routed.model,
                    "state": "cooldown"
                    if stats.cooldown_until > now
                    else "half-open"
                    if stats.half_open
                    else "healthy",
                    "cooldown_until": _iso(stats.cooldown_until),
                    "cooldown_reason": stats.cooldown_reason,
                    "last_error": stats.last_error,
                    "in_flight": stats.in_flight,
                    "latency_ewma_ms": None
                    if stats.latency_s is None
                    else round(stats.latency_s * 1000, 1),
                    "rpm": limits.rpm,
                    "rpm_used": _used(limits.rpm, stats.rpm_left),
                    "tpm": limits.tpm,
                    "tpm_used": _used(limits.tpm, stats.tpm_left),
                    "max_parallel": limits.max_parallel,
                    "requests_1h": requests,
                    "error_rate_1h": errors / requests if requests else None,
                }
            )
        groups.append({"model": name, "deployments": rows})
    return {"data": groups}
