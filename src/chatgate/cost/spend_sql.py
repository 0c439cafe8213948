"""Writing usage records to the SQL spend log: one transaction per batch holds the raw rows
(``spend_log``) and their sums (an upsert into the ``spend_daily`` rollup).

``write(batch, dedupe=True)`` first skips the records whose ``record_id`` the database
already has, and the rollup adds only the rest: the way to write a batch again after a
failure whose outcome is unknown (the commit may have landed), or a replay of the WAL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatgate.cost.budgets import to_pico
from chatgate.cost.usage import UsageRecord
from chatgate.store.partitions import ensure_days
from chatgate.store.schema.spend import LEVERS, SPEND_DAILY, SPEND_LOG

__all__ = ["SpendWriter"]

# what an upsert adds to spend_daily's row
_ADDED = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cost_pico",
    "unpriced",
    "saved_pico",
    *(f"{lever}_saved_pico" for lever in LEVERS),
)


def _row(r: UsageRecord) -> dict[str, Any]:
    return {
        "day": r.day,
        "ts": r.ts,
        "request_id": r.request_id,
        "key_id": r.key_id,
        "user_id": r.user_id,
        "team_id": r.team_id,
        "tags": ",".join(r.tags) or None,
        "model": r.model,
        "deployment": r.deployment,
        "provider": r.provider,
        "served_model": r.served_model,
        "stream": r.stream,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cached_tokens": r.cached_tokens,
        "cache_write_tokens": r.cache_write_tokens,
        "cache_write_1h_tokens": r.cache_write_1h_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "cost_pico": None if r.cost is None else to_pico(r.cost),
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
        "finish_reason": r.finish_reason,
        "attempts": r.attempts,
        "cache_hit": r.cache_hit,
        "error": r.error,
        "record_id": r.record_id,
        "tier": r.tier,
        "tier_score": r.tier_score,
        "saved_pico": None if r.saved is None else to_pico(r.saved),
        "fallback": r.fallback,
        "cache_saved_pico": None if r.cache_saved is None else to_pico(r.cache_saved),
        "prompt_saved_pico": None if r.prompt_saved is None else to_pico(r.prompt_saved),
        "batch_saved_pico": None if r.batch_saved is None else to_pico(r.batch_saved),
        "attempt_log": r.attempt_log,
    }


class _DriverInsert:
    """``INSERT INTO spend_log`` compiled once for the engine's dialect, executed with plain
    tuples. SQLAlchemy's executemany rebuilds and converts every row's parameters in Python
    on the event loop (measured: 7 µs of the 12 µs a record cost); here each value goes
    through its column type's own bind processor and the driver gets the rows as they are.
    None when the dialect's placeholders are not positional (then SQLAlchemy does it)."""

    def __init__(self, engine: AsyncEngine) -> None:
        compiled = SPEND_LOG.insert().compile(dialect=engine.dialect)
        names = compiled.positiontup
        if not names:
            raise ValueError("not a positional paramstyle")
        self.sql = str(compiled)
        self.names = tuple(names)
        processors = [SPEND_LOG.c[n].type.bind_processor(engine.dialect) for n in names]
        self._convert = [(i, f) for i, f in enumerate(processors) if f is not None]

    def rows(self, records: Sequence[UsageRecord]) -> list[tuple[Any, ...]]:
        out = []
        for r in records:
            row = _row(r)
            values = [row[n] for n in self.names]
            for i, convert in self._convert:
                values[i] = convert(values[i])
            out.append(tuple(values))
        return out


def _rollup(records: Sequence[UsageRecord]) -> list[dict[str, Any]]:
    sums: dict[tuple[dt.date, str, str, str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(_ADDED, 0)
    )
    for r in records:
        acc = sums[(r.day, r.key_id or "", r.team_id or "", r.user_id or "", r.model)]
        acc["requests"] += 1
        acc["errors"] += r.error is not None
        acc["prompt_tokens"] += r.prompt_tokens
        acc["completion_tokens"] += r.completion_tokens
        acc["cached_tokens"] += r.cached_tokens
        acc["cache_write_tokens"] += r.cache_write_tokens
        acc["cache_write_1h_tokens"] += r.cache_write_1h_tokens
        for name, value in (
            ("saved_pico", r.saved),
            ("cache_saved_pico", r.cache_saved),
            ("prompt_saved_pico", r.prompt_saved),
            ("batch_saved_pico", r.batch_saved),
        ):
            if value is not None:
                acc[name] += to_pico(value)
        if r.cost is None:
            acc["unpriced"] += r.error is None
        else:
            acc["cost_pico"] += to_pico(r.cost)
    return [
        {"day": k[0], "key_id": k[1], "team_id": k[2], "user_id": k[3], "model": k[4], **v}
        for k, v in sums.items()
    ]


class SpendWriter:
    """Writes batches of records for one engine; the statements are compiled once."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._days: set[dt.date] = set()
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        # One row's upsert, executed for many rows: compiled once. A multi-row VALUES statement
        # is compiled again for every batch (measured: 70 µs per record with 50 keys).
        try:
            self._insert_log: _DriverInsert | None = _DriverInsert(engine)
        except ValueError:
            self._insert_log = None
        stmt = dialect.insert(SPEND_DAILY)
        self._upsert_daily = stmt.on_conflict_do_update(
            index_elements=["day", "key_id", "team_id", "user_id", "model"],
            set_={c: SPEND_DAILY.c[c] + stmt.excluded[c] for c in _ADDED},
        )

    async def write(self, batch: Sequence[UsageRecord], *, dedupe: bool = False) -> int:
        """Write ``batch`` in one transaction; returns the rows added. Raises what the driver
        raises (nothing is written then)."""
        async with self.engine.begin() as conn:
            if dedupe:
                batch = await _new(conn, batch)
                if not batch:
                    return 0
            # The rows' parameters are built on a worker thread: per record they cost the
            # event loop more than the one hop per batch does.
            new_days, log_rows, daily = await asyncio.to_thread(self._parameters, batch)
            new_days -= self._days
            await ensure_days(conn, new_days)
            if self._insert_log is not None:
                await conn.exec_driver_sql(self._insert_log.sql, log_rows)
            else:
                await conn.execute(SPEND_LOG.insert(), log_rows)
            await conn.execute(self._upsert_daily, daily)
        self._days |= new_days
        return len(batch)

    def _parameters(
        self, batch: Sequence[UsageRecord]
    ) -> tuple[set[dt.date], list[Any], list[dict[str, Any]]]:
        """The batch's days, its spend_log rows and its spend_daily sums."""
        days = {r.day for r in batch}
        plan = self._insert_log
        log_rows = plan.rows(batch) if plan is not None else [_row(r) for r in batch]
        return days, log_rows, _rollup(batch)


async def _new(conn: AsyncConnection, batch: Sequence[UsageRecord]) -> list[UsageRecord]:
    ids = [r.record_id for r in batch if r.record_id is not None]
    found: set[str] = set()
    if ids:
        days = {r.day for r in batch}  # lets PostgreSQL look in those partitions only
        query = select(SPEND_LOG.c.record_id).where(
            SPEND_LOG.c.record_id.in_(ids), SPEND_LOG.c.day.in_(days)
        )
        found = set((await conn.execute(query)).scalars())
    return [r for r in batch if r.record_id is None or r.record_id not in found]
