"""The access log: one JSON line per request on the ``chatgate.access`` logger.

``access_line(ctx)`` builds the line (orjson) from a finished RequestContext: the usage-record
fields known today. Message content is included only with ``general_settings.log_content:
true``; keys and Authorization headers are never part of a context, so never of a line.

``AccessLogWriter`` is how ``chatgate serve`` attaches the logger to stderr without ever
blocking the event loop: lines are batched in memory and a writer thread writes each batch;
when the writer falls behind and too many lines wait, a line is dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from chatgate.server.context import RequestContext
from chatgate.server.request_tags import charged

__all__ = ["ACCESS_LOGGER", "AccessLogWriter", "BatchingHandler", "access_line"]

ACCESS_LOGGER = "chatgate.access"


def access_line(ctx: RequestContext) -> bytes:
    usage = ctx.usage
    prompt_details = usage.prompt_tokens_details if usage else None
    completion_details = usage.completion_tokens_details if usage else None
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(ctx.time, UTC).isoformat(timespec="milliseconds"),
        "request_id": ctx.request_id,
        "trace_id": ctx.trace_id,
        "key_id": ctx.key_id,
        "tags": list(charged(ctx.key, ctx.tags)),
        "route": ctx.route,
        "model": ctx.requested_model,
        "deployment": ctx.deployment,
        "stream": ctx.stream,
        "status": ctx.status,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "cached_tokens": prompt_details.cached_tokens if prompt_details else None,
        "reasoning_tokens": completion_details.reasoning_tokens if completion_details else None,
        "cost_usd": str(ctx.cost) if ctx.cost is not None else None,
        "latency_ms": round(ctx.latency_ms, 3),
        "ttft_ms": round(ctx.ttft_ms, 3) if ctx.ttft_ms is not None else None,
        "overhead_ms": round(ctx.overhead_ms, 3) if ctx.overhead_ms is not None else None,
        "finish_reason": ctx.finish_reason,
        "attempts": ctx.attempts,
        "cache_hit": ctx.cache_hit,
        "error_class": ctx.error_class,
    }
    if ctx.tier is not None:  # a tiered name's call (docs/routing.md)
        record["tier"] = ctx.tier.tier
        record["tier_score"] = ctx.tier.score
    if ctx.log_content:
        record["request_content"] = ctx.content_in
        record["response_content"] = ctx.content_out
    return orjson.dumps(record, default=str)


class BatchingHandler(logging.Handler):
    """Collects finished lines in memory; ``flush()`` hands the batch to a writer thread in one
    piece. One thread wake-up per batch, not per line: a thread woken per line fights the event
    loop for the GIL and cut the gateway's throughput ~10x (docs/performance.md). At most
    ``max_pending`` lines wait in memory; past that a line is dropped and counted, never
    waited for."""

    def __init__(self, max_pending: int = 50_000, on_drop: Callable[[], None] | None = None):
        super().__init__()
        self._lines: list[str] = []
        self._pending = 0  # lines taken but not yet written
        self._max = max_pending
        self._on_drop = on_drop
        self._queue: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._count_lock = threading.Lock()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.add(record.getMessage())

    def add(self, line: str) -> None:
        """What ``emit`` does with a record's message, for a caller that has the line."""
        if self._pending >= self._max:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return
        self._lines.append(line)
        with self._count_lock:
            self._pending += 1

    def flush(self) -> None:
        if self._lines:
            batch, self._lines = self._lines, []
            self._queue.put(batch)

    def write_forever(self, stream: TextIO) -> None:
        """The writer thread's loop; ends at the ``None`` that ``close`` sends."""
        while (batch := self._queue.get()) is not None:
            stream.write("\n".join(batch) + "\n")
            stream.flush()
            with self._count_lock:
                self._pending -= len(batch)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        super().close()


class AccessLogWriter:
    """Sends ``chatgate.access`` lines to stderr through a BatchingHandler and its writer
    thread (one per process: each worker of ``serve --workers N`` starts its own)."""

    def __init__(self, max_pending: int = 50_000, on_drop: Callable[[], None] | None = None):
        self._max_pending = max_pending
        self._on_drop = on_drop
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self.handler: BatchingHandler | None = None
        self._thread: threading.Thread | None = None
        self._restore = (logging.NOTSET, True)  # the logger's level and propagate before start

    def start(self) -> None:
        # Made here, not in __init__: a logging.config.dictConfig call in between (uvicorn
        # makes one at start-up) closes every handler that already exists.
        self.handler = BatchingHandler(self._max_pending, self._on_drop)
        self._thread = threading.Thread(
            target=self.handler.write_forever,
            args=(sys.stderr,),
            name="chatgate-access-log",
            daemon=True,
        )
        self._restore = (self._logger.level, self._logger.propagate)
        self._logger.addHandler(self.handler)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False
        self._thread.start()

    def flush(self) -> None:
        if self.handler is not None:
            self.handler.flush()

    def direct(self) -> BatchingHandler | None:
        """The handler, when it is all the access logger does (no other handler, no filter,
        as ``serve`` sets it up): a line can then skip logging's LogRecord (~5 µs a line)."""
        logger, handler = self._logger, self.handler
        if handler is None or logger.handlers != [handler] or logger.filters or handler.filters:
            return None
        return handler if logger.isEnabledFor(logging.INFO) else None

    def stop(self) -> None:
        """Write out what is pending, then detach."""
        if self.handler is None or self._thread is None:
            return
        self._logger.removeHandler(self.handler)
        level, self._logger.propagate = self._restore
        self._logger.setLevel(level)
        self.handler.close()
        self._thread.join(5)
        self.handler = self._thread = None
