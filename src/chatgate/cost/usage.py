"""Usage records: one small row per call (ids and numbers), and where they go.

``UsageRecord.of(response, ...)`` builds one from an answer (or ``UsageRecord.failed`` from
an error); a sink's ``emit(record)`` only appends to memory, so it never delays a response.
Sinks: ``MemorySink`` (tests, dashboards in-process), ``JsonlSink`` (a local file, written
off the event loop) and ``usage_sql.SqlSink`` (the spend log, batched, outage-proof).
``await sink.aclose()`` flushes everything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypedDict

import orjson

from chatgate.cost.attempt_log import attempts_json
from chatgate.cost.calc import cache_writes_1h, token_parts
from chatgate.cost.savings import recorded_savings
from chatgate.types import ChatResponse, Usage

__all__ = [
    "JsonlSink",
    "MemorySink",
    "UsageRecord",
    "UsageSink",
    "decimal_str",
    "token_fields",
]

log = logging.getLogger("chatgate.spend")


class TokenFields(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    reasoning_tokens: int


def token_fields(usage: Usage | None) -> TokenFields:
    """The record's token columns from a Usage (all 0 without one). The 1-hour writes are
    counted as ``cost_of`` bills them: at most all the writes."""
    fresh = cached = written = hour = visible = reasoning = 0
    if usage is not None:
        fresh, cached, written, visible, reasoning = token_parts(usage)
        hour = min(cache_writes_1h(usage), written) if written else 0
    return TokenFields(
        prompt_tokens=fresh + cached + written,
        completion_tokens=visible + reasoning,
        cached_tokens=cached,
        cache_write_tokens=written,
        cache_write_1h_tokens=hour,
        reasoning_tokens=reasoning,
    )


@dataclass(slots=True)
class UsageRecord:
    ts: float  # unix seconds when the call ended
    model: str  # as requested (a router model_name, or provider/model)
    request_id: str | None = None
    key_id: str | None = None  # an id or hash of the key, never the key itself
    user_id: str | None = None
    team_id: str | None = None
    tags: tuple[str, ...] = ()
    deployment: str | None = None
    provider: str | None = None
    served_model: str | None = None
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0  # all cache writes, both TTLs
    cache_write_1h_tokens: int = 0  # the 1-hour part of those (billed higher)
    reasoning_tokens: int = 0
    cost: Decimal | None = None  # USD; None when the price is unknown
    latency_ms: float | None = None
    ttft_ms: float | None = None
    finish_reason: str | None = None
    attempts: int = 1
    cache_hit: bool = False
    error: str | None = None  # the error class for a failed call
    record_id: str | None = None  # unique; set by the spend log, which writes each id once
    tier: str | None = None  # a tiered name's tier that answered (docs/routing.md)
    tier_score: float | None = None  # the classifier's score; None when a header chose
    saved: Decimal | None = None  # USD the premium tier would have cost more at these tokens
    fallback: bool | None = None  # answered by a fallback group (None: not known)
    # USD saved by the response cache, prompt-cache reads and a provider batch's discount
    # (chatgate.cost.savings; None where the lever did not act)
    cache_saved: Decimal | None = None
    prompt_saved: Decimal | None = None
    batch_saved: Decimal | None = None
    # every attempt (chatgate.cost.attempt_log) when there was more than one, or an error
    attempt_log: str | None = None

    @classmethod
    def of(
        cls,
        response: ChatResponse,
        *,
        model: str | None = None,
        key_id: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        tags: Sequence[str] = (),
        stream: bool = False,
    ) -> UsageRecord:
        meta = response.meta
        served = f"{meta.provider}/{meta.model}" if meta.provider else None
        saved = recorded_savings(
            response.usage,
            served,
            meta.cost,
            cache_hit=meta.cache_hit,
            cache_cost=meta.cache_saved_cost,
        )
        return cls(
            ts=time.time(),
            model=model or meta.model_name or f"{meta.provider}/{meta.model}",
            request_id=meta.request_id,
            key_id=key_id,
            user_id=user_id,
            team_id=team_id,
            tags=tuple(tags),
            deployment=meta.deployment,
            provider=meta.provider or None,
            served_model=meta.model or None,
            stream=stream,
            **token_fields(response.usage),
            cost=meta.cost,
            latency_ms=meta.latency_ms,
            ttft_ms=meta.ttft_ms,
            finish_reason=response.finish_reason,
            attempts=meta.attempts,
            cache_hit=meta.cache_hit,
            tier=meta.tier,
            tier_score=meta.tier_score,
            saved=meta.tier_saved_cost,
            cache_saved=saved.cache,
            prompt_saved=saved.prompt,
            batch_saved=saved.batch,
            attempt_log=attempts_json(meta.attempt_log),
        )

    @classmethod
    def failed(cls, model: str, error: BaseException, **ids: Any) -> UsageRecord:
        """A call that ended in an error (nothing billed unless ``cost`` is given)."""
        tried = attempts_json(getattr(error, "attempt_log", None))
        return cls(
            ts=time.time(), model=model, error=type(error).__name__, attempt_log=tried, **ids
        )

    @property
    def day(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.ts, dt.UTC).date()

    def to_json(self) -> bytes:
        # orjson reads the dataclass itself (tags as a list): 10x faster than asdict()
        return orjson.dumps(self, default=decimal_str)

    @classmethod
    def from_json(cls, line: bytes) -> UsageRecord:
        """A line of ``to_json``; a field added since the line was written takes its default
        (a spill file left by an older version replays)."""
        return cls.from_fields(orjson.loads(line))

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> UsageRecord:
        """A record from its fields as JSON holds them (Decimals as strings, tags as a list);
        fields left out take their defaults."""
        for name in _DECIMALS:
            if data.get(name) is not None:
                data[name] = Decimal(data[name])
        data["tags"] = tuple(data.get("tags", ()))
        return cls(**data)


_DECIMALS = ("cost", "saved", "cache_saved", "prompt_saved", "batch_saved")


def decimal_str(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class UsageSink(Protocol):
    def emit(self, record: UsageRecord) -> None:
        """Take a record; never blocks and never raises for a slow or down store."""
        ...

    async def flush(self) -> None: ...

    async def aclose(self) -> None:
        """Flush everything and stop."""
        ...


class MemorySink:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def emit(self, record: UsageRecord) -> None:
        self.records.append(record)

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class JsonlSink:
    """Appends records to a JSON Lines file; the writes run in a worker thread, batched every
    ``interval_s`` (and on flush/close). A write that fails (a full disk) keeps its records
    for the next one; ``flush`` raises the OSError."""

    def __init__(self, path: str | Path, *, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self._pending: list[UsageRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def emit(self, record: UsageRecord) -> None:
        self._pending.append(record)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except OSError as exc:  # kept for the next try: a full disk must not lose them
                log.warning("usage file %s: write failed (%s); retrying", self.path, exc)

    def _append(self, lines: bytes) -> None:
        with self.path.open("ab", buffering=0) as out:
            start = out.tell()
            try:
                view = memoryview(lines)
                while view:
                    view = view[out.write(view) or 0 :]
            except OSError:
                out.truncate(start)  # no half line left behind for the retry to follow
                raise

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if batch:
                lines = b"".join(r.to_json() + b"\n" for r in batch)
                try:
                    await asyncio.to_thread(self._append, lines)
                except OSError:
                    self._pending[:0] = batch
                    raise

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.flush()

    def read(self) -> list[UsageRecord]:
        if not self.path.exists():
            return []
        return [UsageRecord.from_json(x) for x in self.path.read_bytes().splitlines() if x]
