"""The library's attempt and route spans, by the GenAI conventions, against the fake OpenAI
upstream (a real HTTP server on loopback)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import chatgate
from chatgate import telemetry
from chatgate.batching import abatch
from chatgate.errors import RateLimitError
from chatgate.telemetry import spans as telemetry_spans
from tests.clock import wait_until
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    completion_json,
    error_json,
    text_stream,
)
from tests.integration.test_batch import line

MSGS = [{"role": "user", "content": "hi"}]


async def stream_with_usage(fake: FakeOpenAI) -> chatgate.ChatStream:
    """A streamed call to ``fake`` (scripted by the caller) that asks for usage at the end."""
    return await chatgate.acompletion(
        "openai/gpt-4o-mini",
        MSGS,
        api_base=fake.base_url,
        api_key="k",
        stream=True,
        stream_options={"include_usage": True},
    )


async def test_a_call_is_one_client_span_with_the_genai_attributes(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    fake.script(
        Reply(json=completion_json("Hello!", prompt_tokens=9, completion_tokens=3, cached_tokens=4))
    )
    await chatgate.acompletion(
        "openai/gpt-4o-mini",
        MSGS,
        api_base=fake.base_url,
        api_key="sk-test-0000000000000000",
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        seed=7,
    )
    [span] = spans.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    a = dict(span.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.id"]
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 9
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == fake.port
    assert "gen_ai.input.messages" not in a  # content capture is off by default
    assert "gen_ai.output.messages" not in a


async def test_the_upstream_request_carries_the_attempt_span_as_traceparent(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    await chatgate.acompletion("openai/gpt-4o-mini", MSGS, api_base=fake.base_url, api_key="k")
    [span] = spans.get_finished_spans()
    ctx = span.get_span_context()
    traceparent = fake.last.headers["traceparent"]
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 1  # sampled


async def test_an_upstream_error_sets_error_type_and_status(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    fake.script(Reply(status=400, json=error_json("bad", "invalid_request_error")))
    with pytest.raises(chatgate.BadRequestError):
        await chatgate.acompletion("openai/gpt-4o-mini", MSGS, api_base=fake.base_url, api_key="k")
    [span] = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "BadRequestError"
    assert span.status.status_code is StatusCode.ERROR


async def test_a_stream_span_ends_when_the_stream_ends_with_usage_and_ttfc(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    fake.script(Reply(chunks=text_stream(["Hel", "lo"])))
    stream = await stream_with_usage(fake)
    assert spans.get_finished_spans() == ()  # open while the answer streams
    async for _ in stream:
        pass
    [span] = spans.get_finished_spans()
    a = dict(span.attributes or {})
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < 5


async def test_a_cancelled_stream_ends_its_span(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    fake.script(Reply(chunks=text_stream(["a", "b", "c"]), chunk_delay_s=0.05))
    stream = await chatgate.acompletion(
        "openai/gpt-4o-mini", MSGS, api_base=fake.base_url, api_key="k", stream=True
    )
    await stream.aclose()
    [span] = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["chatgate.stream.cancelled"] is True


async def test_content_capture_records_scrubbed_messages_in_the_conventions_shape(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    telemetry.capture_content(True)
    key = "sk-proj-" + "A1b2C3d4" * 4
    await chatgate.acompletion(
        "openai/gpt-4o-mini",
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"my key {key}"}],
        api_base=fake.base_url,
        api_key="sk-test-0000000000000000",
    )
    [span] = spans.get_finished_spans()
    a = dict(span.attributes or {})
    import orjson

    inputs = orjson.loads(a["gen_ai.input.messages"])
    assert inputs[0] == {"role": "system", "parts": [{"type": "text", "content": "be brief"}]}
    assert inputs[1]["parts"][0]["content"] == "my key ***"
    assert key not in a["gen_ai.input.messages"]
    outputs = orjson.loads(a["gen_ai.output.messages"])
    assert outputs[0]["role"] == "assistant"
    assert outputs[0]["finish_reason"] == "stop"
    assert outputs[0]["parts"][0]["type"] == "text"
    assert key not in a["gen_ai.output.messages"]  # the fake echoes the prompt back


async def test_a_routed_call_is_a_route_span_over_its_attempts_with_the_retry_visible(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    fake.script(Reply(status=500, json=error_json("boom", "server_error")))
    router = chatgate.Router(
        model_list=[
            {
                "model_name": "smart",
                "params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": fake.base_url,
                    "api_key": "k",
                },
            },
        ],
        num_retries=1,
        sleep=_no_sleep,
    )
    await router.acompletion("smart", MSGS)
    finished = spans.get_finished_spans()
    route = next(s for s in finished if s.name == "chatgate.route smart")
    attempts = [s for s in finished if s.name == "chat gpt-4o-mini"]
    assert len(attempts) == 2
    for s in attempts:
        assert s.parent is not None
        assert s.parent.span_id == route.context.span_id
    first, second = sorted(attempts, key=lambda s: s.start_time or 0)
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["error.type"] == "InternalServerError"
    assert (first.attributes["chatgate.attempt"], second.attributes["chatgate.attempt"]) == (1, 2)
    assert second.attributes["chatgate.model_group"] == "smart"
    assert route.attributes is not None
    assert route.attributes["chatgate.fallback_taken"] is False


def failing_over(fake: FakeOpenAI) -> chatgate.Router:
    """A router whose group "smart" fails (the fake's next answer is a 500) over to "cheap"."""
    fake.script(Reply(status=500, json=error_json("boom", "server_error")))
    params = {"api_base": fake.base_url, "api_key": "k"}
    return chatgate.Router(
        model_list=[
            {"model_name": "smart", "params": {"model": "openai/gpt-4o", **params}},
            {"model_name": "cheap", "params": {"model": "openai/gpt-4o-mini", **params}},
        ],
        num_retries=0,
        fallbacks=[{"smart": ["cheap"]}],
        sleep=_no_sleep,
    )


async def test_a_fallback_is_visible_on_the_route_span(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    await failing_over(fake).acompletion("smart", MSGS)
    route = next(s for s in spans.get_finished_spans() if s.name.startswith("chatgate.route"))
    assert route.attributes is not None
    assert route.attributes["chatgate.fallback_taken"] is True
    assert route.attributes["chatgate.served_group"] == "cheap"


async def test_with_no_sdk_configured_no_span_is_recorded_and_no_traceparent_sent(
    fake: FakeOpenAI,
) -> None:
    await chatgate.acompletion("openai/gpt-4o-mini", MSGS, api_base=fake.base_url, api_key="k")
    assert "traceparent" not in fake.last.headers


async def test_with_no_sdk_the_callers_own_trace_context_is_passed_on(fake: FakeOpenAI) -> None:
    # No SDK, but the caller carries a trace (extracted from its own incoming request): the
    # upstream request continues it, as the OpenTelemetry API alone would.
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    incoming = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    token = otel_context.attach(propagate.extract(incoming))
    try:
        await chatgate.acompletion("openai/gpt-4o-mini", MSGS, api_base=fake.base_url, api_key="k")
    finally:
        otel_context.detach(token)
    assert fake.last.headers["traceparent"] == f"00-{trace_id}-{parent_id}-01"


async def _no_sleep(seconds: float) -> None:
    return None


def test_the_blocking_api_puts_its_span_under_the_callers_span(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    tracer = telemetry.spans.tracer()
    with tracer.start_as_current_span("my app step") as parent:
        chatgate.completion("openai/gpt-4o-mini", MSGS, api_base=fake.base_url, api_key="k")
    attempt = next(s for s in spans.get_finished_spans() if s.name.startswith("chat "))
    assert attempt.parent is not None
    assert attempt.parent.span_id == parent.get_span_context().span_id


async def test_a_call_queued_for_an_admission_slot_shows_its_wait_under_its_route_span(
    fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    fake.script(Reply(delay_s=1.0, json=completion_json("slow")))
    params = {"model": "openai/gpt-4o-mini", "api_base": fake.base_url, "api_key": "k"}
    router = chatgate.Router(
        model_list=[{"model_name": "smart", "params": params}],
        settings={"max_parallel_requests": 1, "max_queue": 2},
    )
    slow = asyncio.create_task(router.acompletion("smart", MSGS))
    await wait_until(lambda: len(fake.requests) == 1, what="the slow call upstream")
    queued = asyncio.create_task(router.acompletion("smart", MSGS))
    with pytest.raises(RateLimitError, match="deadline passed while queued"):
        await router.acompletion("smart", MSGS, timeout=0.05)
    await slow
    await queued
    finished = spans.get_finished_spans()
    routes = {s.context.span_id for s in finished if s.name == "chatgate.route smart"}
    waits = [s for s in finished if s.name == "chatgate.admission.wait"]
    assert len(routes) == 3
    assert len(waits) == 2  # the first call took a free slot
    for wait in waits:
        assert wait.parent is not None
        assert wait.parent.span_id in routes
    [failed] = [w for w in waits if w.status.status_code is StatusCode.ERROR]
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "RateLimitError"


async def test_a_batch_s_lines_are_traces_of_their_own_linked_to_the_span_it_ran_under(
    fake: FakeOpenAI, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    params = {"model": "openai/gpt-4o-mini", "api_base": fake.base_url, "api_key": "k"}
    router = chatgate.Router(model_list=[{"model_name": "smart", "params": params}])
    lines = [line("a", "smart"), line("b", "smart")]
    with telemetry_spans.tracer().start_as_current_span("nightly job") as job:
        summary = await abatch(lines, tmp_path / "out.jsonl", router=router)
    assert summary.done == 2
    await abatch([line("c", "smart")], tmp_path / "alone.jsonl", router=router)  # no span
    finished = spans.get_finished_spans()
    by_id = {
        str((s.attributes or {})["chatgate.batch.custom_id"]): s
        for s in finished
        if s.name == "chatgate.batch.line"
    }
    assert sorted(by_id) == ["a", "b", "c"]
    for custom_id, span in by_id.items():
        assert span.parent is None  # a trace of its own
        assert span.attributes is not None
        assert "chatgate.batch.id" not in span.attributes  # the library's batches have none
        links = [link.context for link in span.links]
        assert links == ([job.get_span_context()] if custom_id != "c" else [])
        [route] = [
            s
            for s in finished
            if s.name == "chatgate.route smart" and s.context.trace_id == span.context.trace_id
        ]
        assert route.parent is not None
        assert route.parent.span_id == span.context.span_id
    assert len({s.context.trace_id for s in by_id.values()}) == 3
