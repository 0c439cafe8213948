"""The SQL spend log: usage records written in batches by a background task.

``emit`` appends to a buffer and returns; the writer wakes every ``interval_s`` (or when a
batch is full) and writes a batch in one transaction: the raw rows into ``spend_log`` and
their sums into the ``spend_daily`` rollup (an upsert). A slow database therefore never
delays a response.

When the database is unreachable, batches go to a local spill file (JSON Lines) and the
in-memory buffer stays bounded (``max_buffer``: past it, ``emit`` appends straight to the
file). The writer keeps trying with backoff; once a write succeeds it replays the spill file
and removes it. ``aclose()`` writes everything, or spills what it cannot, so no record is
lost; a spill file left by a previous run is replayed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.cost.budgets import to_pico
from chatgate.cost.usage import UsageRecord
from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate
from chatgate.store.partitions import ensure_days
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG

__all__ = ["SqlSink"]

log = logging.getLogger("chatgate.spend")
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
)


def _count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


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
        if r.cost is None:
            acc["unpriced"] += r.error is None
        else:
            acc["cost_pico"] += to_pico(r.cost)
    return [
        {"day": k[0], "key_id": k[1], "team_id": k[2], "user_id": k[3], "model": k[4], **v}
        for k, v in sums.items()
    ]


class SqlSink:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        spill_path: str | Path = "chatgate-spend-spill.jsonl",
        batch_size: int = 500,
        interval_s: float = 0.5,
        max_buffer: int = 20_000,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.engine = engine
        self.spill_path = Path(spill_path)
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_buffer = max_buffer
        self.max_backoff_s = max_backoff_s
        self.written = 0  # records stored in the database
        self.spilled = 0  # records sent to the spill file (and not yet replayed)
        self._buffer: list[UsageRecord] = []
        self._days: set[dt.date] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._lock = asyncio.Lock()
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

    @classmethod
    async def open(cls, url: str, **options: Any) -> SqlSink:
        """Connect, migrate, replay any spill file from an earlier run, start the writer."""
        engine = create_engine(url)
        await migrate(engine)
        sink = cls(engine, **options)
        sink.start()
        return sink

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def emit(self, record: UsageRecord) -> None:
        if len(self._buffer) >= self.max_buffer:  # the database is behind: keep memory bounded
            self._spill([record])
            return
        self._buffer.append(record)
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    # -- the writer -----------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.interval_s
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            try:
                ok = await self.flush()
            except Exception:  # the writer must outlive anything a write throws
                log.exception("spend log: flush failed; retrying")
                ok = False
            backoff = self.interval_s if ok else min(backoff * 2, self.max_backoff_s)

    async def flush(self) -> bool:
        """Write what is buffered (and replay the spill file); False if the database failed
        (the records were spilled, nothing is lost)."""
        async with self._lock:
            while self._buffer:
                batch = self._buffer[: self.batch_size]
                del self._buffer[: self.batch_size]
                if not await self._write(batch):
                    self._spill(batch + self._buffer)
                    self._buffer.clear()
                    return False
            return await self._replay()

    async def _write(self, batch: Sequence[UsageRecord]) -> bool:
        try:
            async with self.engine.begin() as conn:
                new_days = {r.day for r in batch} - self._days
                await ensure_days(conn, new_days)
                if self._insert_log is not None:
                    plan = self._insert_log
                    await conn.exec_driver_sql(plan.sql, plan.rows(batch))
                else:
                    await conn.execute(SPEND_LOG.insert(), [_row(r) for r in batch])
                await conn.execute(self._upsert_daily, _rollup(batch))
            self._days |= new_days
        except Exception as exc:  # whatever the driver raises, the batch is spilled, never lost
            log.warning(
                "spend log: database write failed (%s); spilling to %s",
                type(exc).__name__,
                self.spill_path,
            )
            return False
        self.written += len(batch)
        return True

    def _spill(self, records: Sequence[UsageRecord]) -> None:
        with self.spill_path.open("ab") as out:
            out.write(b"".join(r.to_json() + b"\n" for r in records))
        self.spilled += len(records)

    async def _replay(self) -> bool:
        """Write the spilled records back. The spill file is first moved aside, so records
        spilled while a replay awaits the database land in a fresh file instead of being
        deleted with the old one; a replay cut short keeps its unwritten rest aside."""
        replaying = self.spill_path.with_name(self.spill_path.name + ".replaying")
        while True:
            if not replaying.exists():
                if not self.spill_path.exists():
                    self.spilled = 0
                    return True
                os.replace(self.spill_path, replaying)
            lines = [x for x in replaying.read_bytes().splitlines() if x]
            records = [UsageRecord.from_json(x) for x in lines]
            for at in range(0, len(records), self.batch_size):
                if not await self._write(records[at : at + self.batch_size]):
                    replaying.write_bytes(b"".join(x + b"\n" for x in lines[at:]))
                    self.spilled = len(lines) - at + _count_lines(self.spill_path)
                    return False
            replaying.unlink()
            if records:
                log.info("spend log: replayed %d spilled records", len(records))

    async def aclose(self) -> None:
        """Stop the writer and write (or spill) every record; dispose of the engine."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        await self.engine.dispose()
