"""The upstream request's trace headers, written directly for the API's default propagators,
are what ``propagate.inject`` writes: sampled or not, with a trace state, with baggage, and
with propagators of an application's own (then the API writes them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chatgate.telemetry.current import context_with
from chatgate.telemetry.propagation import inject_span
from chatgate.telemetry.recorder import LeanTracerProvider, SpanQueue
from chatgate.telemetry.sampling import Sampler

STATE = TraceState([("vendor", "v1"), ("other", "x")])


class Custom(TextMapPropagator):
    """An application's own header, beside the W3C ones."""

    def extract(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> otel_context.Context:
        return context or otel_context.Context()

    def inject(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        setter.set(carrier, "x-custom", "yes")

    @property
    def fields(self) -> set[str]:
        return {"x-custom"}


@pytest.fixture
def textmap() -> Iterator[None]:
    kept = propagate.get_global_textmap()
    try:
        yield
    finally:
        propagate.set_global_textmap(kept)


def spans() -> list[Span]:
    tracer = LeanTracerProvider(Sampler(), SpanQueue(10, 10, lambda n: None)).get_tracer("t")
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), STATE)
    return [
        tracer.start_span("sampled"),
        tracer.start_span("in a caller's trace", context=context_with(NonRecordingSpan(remote))),
        NonRecordingSpan(SpanContext(0x1234, 0x5678, False, TraceFlags(0))),  # not sampled
    ]


def both(span: Span) -> tuple[dict[str, Any], dict[str, Any]]:
    direct: dict[str, Any] = {}
    inject_span(span, direct)
    by_api: dict[str, Any] = {}
    propagate.inject(by_api, context=context_with(span))
    return direct, by_api


@pytest.mark.usefixtures("textmap")
@pytest.mark.parametrize(
    "textmap_used",
    [
        None,  # the API's default: tracecontext, baggage
        TraceContextTextMapPropagator(),
        CompositePropagator([TraceContextTextMapPropagator(), Custom()]),
    ],
    ids=["default", "tracecontext", "custom"],
)
@pytest.mark.parametrize("with_baggage", [False, True])
def test_the_headers_are_the_propagators(
    textmap_used: TextMapPropagator | None, with_baggage: bool
) -> None:
    if textmap_used is not None:
        propagate.set_global_textmap(textmap_used)
    token = otel_context.attach(baggage.set_baggage("tenant", "a b")) if with_baggage else None
    try:
        written = [both(span) for span in spans()]
    finally:
        if token is not None:
            otel_context.detach(token)
    for direct, by_api in written:
        assert direct == by_api
        assert direct["traceparent"].startswith("00-")
        assert ("x-custom" in direct) == isinstance(textmap_used, CompositePropagator)
        assert ("baggage" in direct) == (with_baggage and textmap_used is None)
    sampled, continued, unsampled = (direct for direct, _ in written)
    assert sampled["traceparent"].endswith("-01")
    assert unsampled["traceparent"] == f"00-{0x1234:032x}-{0x5678:016x}-00"
    assert continued["tracestate"] == STATE.to_header()  # the caller's trace's state
