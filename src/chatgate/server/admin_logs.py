"""The spend log, one request at a time, for the admin API and the console.

GET /admin/logs                 newest first; filters: since, until (ISO 8601, unix seconds
                                or 24h / 7d ago), key, team, user, model, status (ok|error),
                                error (class), min_cost (USD), request_id, fallback and
                                retried (true|false: answered by a fallback group; more
                                than one attempt); limit (1-500,
                                default 50); cursor (the previous page's next_cursor)
GET /admin/logs/{request_id}    that request's records: tokens by kind, cost and its
                                breakdown at list prices, latency, TTFT, attempts, cache

Pages are keyset pages on (ts, record_id), never OFFSET: page 1000 costs what page 1 does.
The time window also bounds ``day``, so PostgreSQL reads only that window's partitions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.cost.attempt_log import read_attempts
from chatgate.cost.budgets import from_pico
from chatgate.cost.prices import lookup_price
from chatgate.server.errors import GatewayError
from chatgate.server.log_filters import LogFilters, encode_cursor, log_filters
from chatgate.server.state import GatewayState
from chatgate.store.schema.spend import LEVERS, SPEND_LOG

__all__ = ["log_detail", "log_page"]

_COLUMNS = {"key": "key_id", "team": "team_id", "user": "user_id", "model": "model"}
_RID = func.coalesce(SPEND_LOG.c.record_id, "")


def engine_of(state: GatewayState) -> AsyncEngine:
    if state.services.engine is None:
        raise GatewayError(503, "the gateway's database is not open yet", type_="server_error")
    return state.services.engine


def _where(f: LogFilters) -> list[ColumnElement[bool]]:
    c = SPEND_LOG.c
    first, last = f.window.days
    out = [c.day >= first, c.day <= last, c.ts >= f.window.since, c.ts < f.window.until]
    for name, value in f.text.items():
        if name == "error":
            out.append(c.error == value)
        elif name == "request_id":
            out.append(c.request_id == value)
        else:
            out.append(c[_COLUMNS[name]] == value)
    if f.status == "ok":
        out.append(c.error.is_(None))
    elif f.status == "error":
        out.append(c.error.is_not(None))
    if "fallback" in f.flags:  # NULL (not known: an older row) counts as no fallback
        taken = c.fallback.is_(True)
        out.append(
            taken if f.flags["fallback"] else or_(c.fallback.is_(None), c.fallback.is_(False))
        )
    if "retried" in f.flags:
        out.append(c.attempts > 1 if f.flags["retried"] else c.attempts <= 1)
    if f.min_cost_pico is not None:
        out.append(c.cost_pico >= f.min_cost_pico)
    if f.cursor is not None:
        ts, rid = f.cursor
        out.append(or_(c.ts < ts, and_(c.ts == ts, rid > _RID)))
    return out


def _usd(pico: int | None) -> str | None:
    return None if pico is None else str(from_pico(pico))


def _row(m: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "time": dt.datetime.fromtimestamp(m["ts"], dt.UTC).isoformat(),
        "ts": m["ts"],
        "request_id": m["request_id"],
        "record_id": m["record_id"],
        "key_id": m["key_id"],
        "team": m["team_id"],
        "user": m["user_id"],
        "tags": [t for t in (m["tags"] or "").split(",") if t],
        "model": m["model"],
        "deployment": m["deployment"],
        "provider": m["provider"],
        "served_model": m["served_model"],
        "stream": m["stream"],
        "prompt_tokens": m["prompt_tokens"],
        "completion_tokens": m["completion_tokens"],
        "cached_tokens": m["cached_tokens"],
        "cache_write_tokens": m["cache_write_tokens"],
        "cache_write_1h_tokens": m["cache_write_1h_tokens"],
        "reasoning_tokens": m["reasoning_tokens"],
        "cost": _usd(m["cost_pico"]),
        "latency_ms": m["latency_ms"],
        "ttft_ms": m["ttft_ms"],
        "finish_reason": m["finish_reason"],
        "attempts": m["attempts"],
        "fallback": m["fallback"],
        "cache_hit": m["cache_hit"],
        "error": m["error"],
        "saved": {
            lever: _usd(m[f"{lever}_saved_pico"] if lever != "tier" else m["saved_pico"])
            for lever in ("tier", *LEVERS)
        },
    }


async def log_page(state: GatewayState, query: Mapping[str, str]) -> dict[str, Any]:
    filters = log_filters(query)  # a bad filter is a 400 before any query
    if state.services.spend is not None:
        await state.services.spend.flush()  # what was served a moment ago is on the page
    stmt = (
        select(SPEND_LOG)
        .where(*_where(filters))
        .order_by(SPEND_LOG.c.ts.desc(), _RID.desc())
        .limit(filters.limit + 1)
    )
    async with engine_of(state).connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(stmt)]
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    cursor = encode_cursor(rows[-1]["ts"], rows[-1]["record_id"] or "") if more else None
    return {"data": [_row(r) for r in rows], "next_cursor": cursor}


def _breakdown(row: Mapping[str, Any]) -> dict[str, str] | None:
    """The cost by token kind at the bundled list price (the recorded cost is the bill)."""
    if not row["provider"] or not row["served_model"]:
        return None
    price = lookup_price(f"{row['provider']}/{row['served_model']}")
    if price is None:
        return None
    reads, writes, hour = (
        row["cached_tokens"],
        row["cache_write_tokens"],
        row["cache_write_1h_tokens"],
    )
    write_price = price.cache_write if price.cache_write is not None else price.input
    parts: dict[str, Decimal] = {
        "input": (row["prompt_tokens"] - reads - writes) * price.input,
        "cache_read": reads
        * (price.cached_input if price.cached_input is not None else price.input),
        "cache_write": (writes - hour) * write_price,
        "cache_write_1h": hour
        * (price.cache_write_1h if price.cache_write_1h is not None else write_price),
        "output": row["completion_tokens"] * price.output,
    }
    return {name: format(value.normalize(), "f") for name, value in parts.items() if value}


async def log_detail(state: GatewayState, request_id: str) -> dict[str, Any]:
    if not 0 < len(request_id) <= 128:
        raise GatewayError(400, "request_id: from 1 to 128 characters", param="request_id")
    if state.services.spend is not None:
        await state.services.spend.flush()
    stmt = (
        select(SPEND_LOG)
        .where(SPEND_LOG.c.request_id == request_id)
        .order_by(SPEND_LOG.c.ts, _RID)
        .limit(100)
    )
    async with engine_of(state).connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(stmt)]
    if not rows:
        raise GatewayError(
            404, f"no spend record for request {request_id!r}", param="request_id", code="not_found"
        )
    records = [
        {**_row(r), "cost_breakdown": _breakdown(r), "attempt_log": read_attempts(r["attempt_log"])}
        for r in rows
    ]
    return {
        "request_id": request_id,
        "records": records,
        # the spend log holds ids and numbers only; content goes to the access log
        "content_logged": state.log_content,
    }
