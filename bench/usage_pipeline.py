"""What a request pays for metrics and the access log, and what the background pays.

    python bench/usage_pipeline.py [--records 50000]

Request path: RequestContext creation + headers + the in-flight gauge + ``pipeline.submit``.
Background (off the request path, between requests): Prometheus recording and the JSON
access-log line handed to the batching log handler, per record. Medians of 5 runs, in µs.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import threading
import time
from collections.abc import Callable
from decimal import Decimal

from chatgate.server.access_log import ACCESS_LOGGER, BatchingHandler, access_line
from chatgate.server.context import RequestContext
from chatgate.server.metrics import Metrics
from chatgate.server.pipeline import UsagePipeline
from chatgate.types import PromptTokensDetails, Usage

SCOPE = {"headers": [(b"content-type", b"application/json"), (b"x-chatgate-tags", b"a,b")]}


def finished() -> RequestContext:
    ctx = RequestContext.from_scope(SCOPE, "/v1/chat/completions")
    ctx.served_by("smart", "openai/gpt-4o-mini", stream=True)
    ctx.status, ctx.ttft_ms, ctx.cost = 200, 12.5, Decimal("0.00012")
    ctx.usage = Usage(
        prompt_tokens=42,
        completion_tokens=60,
        total_tokens=102,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=0),
    )
    ctx.headers()
    ctx.finish()
    return ctx


def per_call_us(fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    n = parser.parse_args().records
    metrics = Metrics()
    logger = logging.getLogger(ACCESS_LOGGER)
    handler = BatchingHandler(max_pending=n * 10)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    sink = io.StringIO()
    writer = threading.Thread(target=handler.write_forever, args=(sink,), daemon=True)
    writer.start()
    ctx = finished()
    pipeline = UsagePipeline([], maxsize=n * 10)

    def request_path() -> None:
        c = RequestContext.from_scope(SCOPE, "/v1/chat/completions")
        metrics.in_flight.inc()
        c.served_by("smart", "openai/gpt-4o-mini")
        c.headers()
        metrics.in_flight.dec()
        c.finish()
        pipeline.submit(c)

    def log_line() -> None:
        logger.info(access_line(ctx).decode())

    rows = {
        "request path: context + headers + gauge + submit": lambda: per_call_us(request_path, n),
        "  of which pipeline.submit alone": lambda: per_call_us(lambda: pipeline.submit(ctx), n),
        "background: Prometheus record": lambda: per_call_us(lambda: metrics.record(ctx), n),
        "background: access-log line (build + emit)": lambda: per_call_us(log_line, n),
    }
    for name, run in rows.items():
        samples = []
        for _ in range(5):
            samples.append(run())
            pipeline.drain()
            handler.flush()
        print(f"{name:52} {statistics.median(samples):6.2f} µs")
    handler.close()
    writer.join(5)


if __name__ == "__main__":
    main()
