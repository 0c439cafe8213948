"""The access log: one JSON line per request on the ``chatgate.access`` logger.

``access_line(ctx)`` builds the line (orjson) from a finished RequestContext: the usage-record
fields known today. Message content is included only with ``general_settings.log_content:
true``; keys and Authorization headers are never part of a context, so never of a line.

``DroppingQueueHandler`` is how ``chatgate serve`` attaches the logger to stderr without ever
blocking the event loop: the line goes into a bounded queue that a listener thread writes out;
when the writer falls behind and the queue is full, the line is dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import orjson

from chatgate.server.context import RequestContext

__all__ = ["ACCESS_LOGGER", "AccessLogWriter", "DroppingQueueHandler", "access_line"]

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
        "tags": list(ctx.tags),
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
    if ctx.log_content:
        record["request_content"] = ctx.content_in
        record["response_content"] = ctx.content_out
    return orjson.dumps(record, default=str)


class DroppingQueueHandler(QueueHandler):
    """A QueueHandler over a bounded queue that drops (and counts) instead of blocking."""

    def __init__(self, maxsize: int, on_drop: Callable[[], None] | None = None) -> None:
        super().__init__(queue.Queue(maxsize))
        self.dropped = 0
        self._on_drop = on_drop

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # the message is already a finished line; no formatting on this thread


class AccessLogWriter:
    """Sends ``chatgate.access`` lines to stderr through a bounded queue and a writer thread
    (one per process: each worker of ``serve --workers N`` starts its own)."""

    def __init__(self, maxsize: int = 10_000, on_drop: Callable[[], None] | None = None) -> None:
        self._handler = DroppingQueueHandler(maxsize, on_drop)
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))
        self._listener = QueueListener(self._handler.queue, stream)
        self._logger = logging.getLogger(ACCESS_LOGGER)

    @property
    def dropped(self) -> int:
        return self._handler.dropped

    def start(self) -> None:
        self._logger.addHandler(self._handler)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False
        self._listener.start()

    def stop(self) -> None:
        """Write out what is queued, then detach."""
        self._logger.removeHandler(self._handler)
        self._listener.stop()
