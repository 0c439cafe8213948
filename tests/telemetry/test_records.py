"""The lean recorder's spans record facts (telemetry/records.py) that the export thread turns
into attributes: the same calls, traced once through the SDK (attributes built by semconv on
the request path) and once through the lean recorder (decoded from what its exporter sends),
give the same spans with the same attributes."""

from __future__ import annotations

import gc
import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

import chatgate
from chatgate import telemetry
from chatgate.providers.base import Deployment
from chatgate.telemetry.meters import LeanMeterProvider
from chatgate.telemetry.recorder import LeanTracerProvider, SpanQueue
from chatgate.telemetry.sampling import Sampler
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, text_stream
from tests.telemetry.test_library_spans import failing_over, stream_with_usage
from tests.telemetry.test_otlp_encoder import attrs, decode

MSGS = [{"role": "user", "content": "hi"}]
# Differ from one call to the next, not from one recorder to the other.
_PER_CALL = {"gen_ai.response.id", "gen_ai.response.time_to_first_chunk"}

Calls = Callable[[FakeOpenAI], Awaitable[None]]


async def direct_call(fake: FakeOpenAI) -> None:
    answer = completion_json("Hi", prompt_tokens=11, completion_tokens=2, cached_tokens=6)
    fake.script(Reply(json=answer))
    request = {"temperature": 0.0, "frequency_penalty": 0.1, "stop": "END", "n": 2}
    await chatgate.acompletion(
        "openai/gpt-4o-mini", MSGS, api_base=fake.base_url, api_key="k", seed=3, **request
    )


async def routed_fallback(fake: FakeOpenAI) -> None:
    await failing_over(fake).acompletion("smart", MSGS, presence_penalty=0.5)


async def stream_cancelled(fake: FakeOpenAI) -> None:
    fake.script(Reply(chunks=text_stream(["a", "b", "c"]), chunk_delay_s=0.05))
    stream = await chatgate.acompletion(
        "openai/gpt-4o-mini", MSGS, api_base=fake.base_url, api_key="k", stream=True
    )
    await stream.aclose()


async def stream_whole(fake: FakeOpenAI) -> None:
    fake.script(Reply(chunks=text_stream(["a", "b"], usage=(5, 2))))
    async for _ in await stream_with_usage(fake):
        pass


def _sdk_spans(spans: Any) -> list[tuple[str, int, dict[str, Any], int]]:
    out = []
    for span in spans:
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()}
        out.append((span.name, span.kind.value + 1, values, span.status.status_code.value))
    return out


async def traced_by_sdk(calls: Calls, fake: FakeOpenAI) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.set_tracer_provider(provider)
    try:
        await calls(fake)
    finally:
        telemetry.set_tracer_provider(None)
        provider.shutdown()
    return _sdk_spans(exporter.get_finished_spans())


async def traced_lean(calls: Calls, fake: FakeOpenAI) -> list[Any]:
    queue = SpanQueue(1000, 1000, lambda n: None)
    telemetry.set_tracer_provider(LeanTracerProvider(Sampler(), queue))
    try:
        await calls(fake)
    finally:
        telemetry.set_tracer_provider(None)
    request = decode(queue.take(1000))
    spans = [s for scope in request.resource_spans[0].scope_spans for s in scope.spans]
    return [(s.name, s.kind, attrs(s.attributes), s.status.code) for s in spans]


def _comparable(spans: list[Any]) -> list[Any]:
    out = []
    for name, kind, values, status in sorted(spans, key=lambda s: (s[0], sorted(s[2]))):
        assert all(values.get(key) for key in _PER_CALL & values.keys())
        kept = {k: v for k, v in values.items() if k not in _PER_CALL}
        out.append((name, kind, kept, sorted(_PER_CALL & values.keys()), status))
    return out


@pytest.mark.parametrize(
    "calls",
    [direct_call, routed_fallback, stream_cancelled, stream_whole],
    ids=lambda c: c.__name__,
)
async def test_the_lean_recorders_spans_carry_exactly_the_sdk_paths_attributes(
    fake: FakeOpenAI, calls: Calls
) -> None:
    by_sdk = await traced_by_sdk(calls, fake)
    fake.requests.clear()
    lean = await traced_lean(calls, fake)
    assert _comparable(lean) == _comparable(by_sdk)
    assert len(by_sdk) >= 1


def _reachable_from(roots: list[Any]) -> list[Any]:
    """Everything ``roots`` keep alive, but shared, long-lived things (deployments, classes,
    modules, functions): what a queued span or a deferred measurement holds on to."""
    seen: set[int] = set()
    todo, found = list(roots), []
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, (type, types.ModuleType, Deployment)):
            continue
        if isinstance(item, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
            continue
        seen.add(id(item))
        found.append(item)
        todo.extend(gc.get_referents(item))
    return found


@pytest.mark.parametrize(
    "calls", [direct_call, routed_fallback, stream_whole], ids=lambda c: c.__name__
)
async def test_what_waits_for_export_keeps_no_request_answer_or_error_alive(
    fake: FakeOpenAI, calls: Calls
) -> None:
    """Spans and measurements wait up to a second for the export thread; keeping each
    request's objects alive that long made every request slower (~60 us CPU a request,
    docs/observability.md "What held objects cost"). They keep numbers and strings only."""
    queue = SpanQueue(1000, 1000, lambda n: None)
    meters = LeanMeterProvider()
    telemetry.set_tracer_provider(LeanTracerProvider(Sampler(), queue))
    telemetry.set_meter_provider(meters)
    try:
        await calls(fake)
    finally:
        telemetry.set_tracer_provider(None)
        telemetry.set_meter_provider(None)
    waiting = [*queue.take(1000), *meters.later]
    assert waiting
    held = _reachable_from(waiting)
    kept = [type(x).__name__ for x in held if isinstance(x, (BaseModel, BaseException))]
    assert kept == []
    assert any(type(x).__name__ == "AttemptFacts" for x in held)
