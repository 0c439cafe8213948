"""The steps of a call as spans: authentication, the budget hold, the cache lookup and an
admission wait under the request's span, the spend-log write after it, and a batch's line
as the root of a trace of its own (telemetry/spans.py makes the rest).

Under the gateway's own server span (the lean recorder) a step is only timed onto the span's
facts, two clock reads, and exported as its child span (telemetry/otlp.py); with an SDK each
step is a span of its own, made current. Nothing at all when the request is not traced.
"""

from __future__ import annotations

import contextlib
from time import time_ns
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind

from chatgate.telemetry import spans
from chatgate.telemetry.current import context_with, detach
from chatgate.telemetry.recorder import LeanSpan, LeanTracer, current_span
from chatgate.telemetry.records import ServerFacts

__all__ = ["batch_line", "current_link", "step", "step_done"]

_NULL = contextlib.nullcontext()


def step(name: str, *, holds_calls: bool = False) -> contextlib.AbstractContextManager[Any]:
    """A gateway step as a child of the request's span. ``holds_calls``: spans start inside
    it (the cache lookup holds the routed call), so it is a span of its own, made current."""
    if spans.off():
        return _NULL
    span = current_span()
    if not holds_calls and type(span) is LeanSpan:
        facts = span.facts
        if type(facts) is ServerFacts:
            return _Timed(facts, name)
    if not span.is_recording():
        return _NULL
    return _Step(spans.tracer().start_span(name))


def step_done(
    name: str, parent: SpanContext, start_ns: int, error: BaseException | None = None
) -> None:
    """A step done from ``start_ns`` until now after its request was over (the spend-log
    write), as a child of the request's span, whose context was kept. With the lean recorder
    it is queued as a ``LateStep``: no span object, id or context on the path."""
    end_ns = time_ns()
    source = spans.tracer()
    if type(source) is LeanTracer:
        failed = None if error is None else type(error).__name__
        source.put_step(parent, (name, start_ns, end_ns, failed))
        return
    context = context_with(NonRecordingSpan(parent))
    span = source.start_span(name, context=context, start_time=start_ns)
    if error is not None:
        spans.mark_failed(span, error)
    span.end(end_ns)


def current_link() -> SpanContext | None:
    """The current span's context, for a batch's lines to link to (None: nobody collects
    spans, or there is no current span)."""
    if spans.off():
        return None
    context = current_span().get_span_context()
    return context if context.is_valid else None


def batch_line(
    custom_id: str, batch_id: str | None, link: SpanContext | None
) -> contextlib.AbstractContextManager[Any]:
    """A batch's line as a trace of its own: the root span ``chatgate.batch.line`` (the
    line's ``custom_id``, the batch's id when it has one), linked to the span the batch was
    started under (``link``), made current for the line's routed call. A batch of 50,000
    lines in one trace is no trace anyone reads; the link keeps the way back to the request
    that submitted it (as OpenTelemetry's messaging conventions do for a batch's messages)."""
    if spans.off():
        return _NULL
    attributes = {"chatgate.batch.custom_id": custom_id}
    if batch_id is not None:
        attributes["chatgate.batch.id"] = batch_id
    span = spans.tracer().start_span(
        "chatgate.batch.line",
        context=Context(),  # a root: not the caller's span's child
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        links=[Link(link)] if link is not None else None,
    )
    return _Step(span)


class _Timed:
    """A step timed onto its server span's facts."""

    __slots__ = ("_facts", "_name", "_start")

    def __init__(self, facts: ServerFacts, name: str) -> None:
        self._facts, self._name = facts, name

    def __enter__(self) -> None:
        self._start = time_ns()

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        step = (self._name, self._start, time_ns(), None if error is None else type(error).__name__)
        steps = self._facts.steps
        if steps is None:
            self._facts.steps = [step]
        else:
            steps.append(step)


class _Step(spans.Current):
    """A step's span is current inside, marked failed by what escapes, and ended at the exit."""

    __slots__ = ()

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        detach(self._token)
        if error is not None:
            spans.mark_failed(self._span, error)
        self._span.end()
