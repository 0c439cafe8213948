"""The request context, the usage pipeline and the access-log line: pure parts, no server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from decimal import Decimal

import pytest

from chatgate.server.access_log import ACCESS_LOGGER, AccessLogWriter, BatchingHandler, access_line
from chatgate.server.context import MAX_TAGS, RequestContext
from chatgate.server.pipeline import UsagePipeline
from chatgate.server.request import response_headers
from chatgate.types import CompletionTokensDetails, PromptTokensDetails, Usage
from tests.clock import wait_until


def scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"headers": list(headers)}


def test_context_reads_tags_and_trace_id() -> None:
    ctx = RequestContext.from_scope(
        scope((b"x-chatgate-tags", b" a, b ,,c "), (b"x-chatgate-trace-id", b"t-1")), "/r"
    )
    assert ctx.tags == ("a", "b", "c")
    assert ctx.trace_id == "t-1"
    assert ctx.request_id.startswith("cg-")
    assert ctx.request_id != RequestContext(route="/r").request_id
    many = ",".join(f"t{i}" for i in range(100)).encode()
    assert len(RequestContext.from_scope(scope((b"x-chatgate-tags", many)), "/r").tags) == MAX_TAGS


def test_context_takes_the_last_of_repeated_headers_and_bounds_the_trace_id() -> None:
    ctx = RequestContext.from_scope(
        scope(
            (b"x-chatgate-trace-id", b"first"),
            (b"x-chatgate-tags", b"a"),
            (b"x-chatgate-trace-id", b"x" * 500),
            (b"x-chatgate-tags", b"b,c"),
        ),
        "/r",
    )
    assert ctx.trace_id == "x" * 128
    assert ctx.tags == ("b", "c")
    bare = RequestContext.from_scope(scope((b"x-chatgate-tags", b" , ")), "/r")
    assert (bare.trace_id, bare.tags) == (None, ())


def test_headers_exclude_upstream_wait() -> None:
    ctx = RequestContext(route="/r")
    ctx.started -= 1.0  # the request began a second ago ...
    ctx.upstream_s = 0.999  # ... and all but a millisecond of it was the upstream's
    ctx.requested_model, ctx.deployment, ctx.attempts = "m", "openai/x", 1
    headers = dict(response_headers(ctx))
    assert headers["x-chatgate-model"] == "openai/x"
    assert headers["x-chatgate-attempts"] == "1"
    assert 0.9 < float(headers["x-chatgate-overhead-ms"]) < 50
    assert "x-chatgate-cost" not in headers
    ctx.cost, ctx.cache_hit = Decimal("0.0021"), True
    headers = dict(response_headers(ctx))
    assert (headers["x-chatgate-cost"], headers["x-chatgate-cache"]) == ("0.0021", "hit")


def finished(**fields: object) -> RequestContext:
    ctx = RequestContext(route="/v1/chat/completions", trace_id="tr", tags=("x",))
    ctx.requested_model, ctx.deployment, ctx.stream = "smart", "openai/gpt-4o-mini", True
    ctx.status = 200
    ctx.usage = Usage(
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=4),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=2),
    )
    ctx.cost = Decimal("0.000123")
    ctx.content_in = [{"role": "user", "content": "secret words"}]
    ctx.content_out = "answer words"
    for name, value in fields.items():
        setattr(ctx, name, value)
    ctx.ended = ctx.started + 0.01
    return ctx


def test_access_line_fields_and_content_only_when_asked() -> None:
    line = json.loads(access_line(finished()))
    assert line["model"] == "smart"
    assert line["deployment"] == "openai/gpt-4o-mini"
    assert (line["prompt_tokens"], line["completion_tokens"]) == (10, 5)
    assert (line["cached_tokens"], line["reasoning_tokens"]) == (4, 2)
    assert line["cost_usd"] == "0.000123"
    assert line["stream"] is True
    assert line["time"].endswith("+00:00")
    assert "secret words" not in json.dumps(line)
    logged = json.loads(access_line(finished(log_content=True)))
    assert logged["request_content"] == [{"role": "user", "content": "secret words"}]
    assert logged["response_content"] == "answer words"


def test_pipeline_drops_and_counts_when_full() -> None:
    seen: list[str] = []
    drops: list[int] = []
    pipeline = UsagePipeline(
        [lambda c: seen.append(c.request_id)], maxsize=3, on_drop=lambda: drops.append(1)
    )
    contexts = [finished() for _ in range(5)]
    for ctx in contexts:
        pipeline.submit(ctx)
    assert (len(pipeline), pipeline.dropped, len(drops)) == (3, 2, 2)
    assert pipeline.drain(2) == 2
    assert pipeline.drain() == 1
    assert seen == [c.request_id for c in contexts[:3]]


def test_a_full_pipeline_still_gives_every_record_to_its_lossless_sinks() -> None:
    seen: list[str] = []
    kept: list[str] = []
    pipeline = UsagePipeline(
        [lambda c: seen.append(c.request_id)],
        lossless=[lambda c: kept.append(c.request_id)],
        maxsize=3,
    )
    contexts = [finished() for _ in range(10)]
    for ctx in contexts:
        pipeline.submit(ctx)
    assert pipeline.dropped == 7
    pipeline.drain()
    assert seen == [c.request_id for c in contexts[:3]]
    assert sorted(kept) == sorted(c.request_id for c in contexts)  # none lost, full or not


def test_a_broken_sink_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[RequestContext] = []

    def broken(ctx: RequestContext) -> None:
        raise ValueError("sink bug")

    pipeline = UsagePipeline([broken, seen.append])
    for _ in range(3):
        pipeline.submit(finished())
    with caplog.at_level(logging.ERROR, logger="chatgate.server"):
        assert pipeline.drain() == 3
    assert len(seen) == 3
    assert sum("sink bug" in r.getMessage() or r.exc_info is not None for r in caplog.records) == 1


async def test_background_task_drains_in_slices_and_stop_flushes() -> None:
    seen: list[RequestContext] = []
    pipeline = UsagePipeline([seen.append], interval_s=0.001, slice_size=2)
    pipeline.start()
    for _ in range(5):
        pipeline.submit(finished())
    await wait_until(lambda: len(seen) == 5, what="the background task drained all five")
    pipeline.submit(finished())
    await pipeline.stop()
    assert len(seen) == 6


async def test_an_idle_pipeline_wakes_for_each_record_and_sleeps_again() -> None:
    """Idle, the task waits for a record instead of a timer; a record after an idle spell, and
    after another one, is still drained in the background (and nothing spins meanwhile)."""
    seen: list[RequestContext] = []
    pipeline = UsagePipeline([seen.append], interval_s=0.001)
    pipeline.start()
    for n in (1, 2):
        await asyncio.sleep(0.05)  # idle: the task is parked on its event
        assert pipeline._idle
        pipeline.submit(finished())
        await wait_until(lambda n=n: len(seen) == n, what=f"record {n} drained after idling")
    await pipeline.stop()
    assert len(seen) == 2


def test_batching_handler_writes_batches_and_drops_past_its_bound() -> None:
    drops: list[int] = []
    handler = BatchingHandler(max_pending=3, on_drop=lambda: drops.append(1))
    logger = logging.getLogger("chatgate.test.batching")
    logger.addHandler(handler)
    logger.propagate = False
    out = io.StringIO()
    writer = threading.Thread(target=handler.write_forever, args=(out,))
    writer.start()
    try:
        for i in range(5):
            logger.warning("line %d", i)
        assert out.getvalue() == ""  # nothing is written before the batch is handed over
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
        writer.join(5)
    assert out.getvalue() == "line 0\nline 1\nline 2\n"
    assert (handler.dropped, len(drops)) == (2, 2)


def test_lines_skip_logging_only_while_the_writer_is_all_the_logger_does() -> None:
    writer = AccessLogWriter()
    writer.start()
    logger = logging.getLogger(ACCESS_LOGGER)
    try:
        assert writer.direct() is writer.handler
        extra = logging.NullHandler()
        logger.addHandler(extra)  # someone else listens too: they must get their records
        assert writer.direct() is None
        logger.removeHandler(extra)
        only_errors = logging.Filter("nothing-matches")
        logger.addFilter(only_errors)
        assert writer.direct() is None
        logger.removeFilter(only_errors)
        logger.setLevel(logging.WARNING)
        assert writer.direct() is None
        logger.setLevel(logging.INFO)
        assert writer.direct() is writer.handler
    finally:
        writer.stop()
    assert writer.direct() is None
    assert logger.propagate  # stop() gives the logger back as it was
