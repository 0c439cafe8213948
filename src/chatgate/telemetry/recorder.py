"""The gateway's span recorder: the OpenTelemetry API's TracerProvider / Tracer / Span, lean.

The SDK records a span in about 44 us (attribute validation and copies, span limits, a lock
per span, processor fan-out, a ReadableSpan copy at the end); a gateway request makes about
seven, which is what made tracing cost ~500 us per request. Here a span is one slotted object:
attributes go into a plain dict (checked when the exporter encodes them, not on the request
path), and chatgate's own spans carry ``Facts`` instead (telemetry/records.py); ending a
span appends it to a bounded queue (``SpanQueue``) that a background thread
drains (telemetry/export.py). A full queue drops the span and counts it; nothing here ever
waits.

Anything written against the API (our instrumentation, a third-party instrumentation handed
this provider) works unchanged; W3C ``traceparent`` propagation is the API's (for its default
propagators written the same way directly: telemetry/propagation.py). Sampling is
``sampling.Sampler``: a span not sampled is the API's ``NonRecordingSpan`` carrying a valid
context, so the trace id still travels downstream with the sampled flag off.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from random import getrandbits
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes, AttributeValue

from chatgate.telemetry.current import get_context
from chatgate.telemetry.sampling import Sampler

__all__ = [
    "Facts",
    "LateStep",
    "LeanSpan",
    "LeanTracer",
    "LeanTracerProvider",
    "Queued",
    "Scope",
    "SpanQueue",
    "Step",
    "current_span",
]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_DEFAULT_STATE = trace.DEFAULT_TRACE_STATE
_get_current_span = trace.get_current_span
_INVALID_SPAN = trace.INVALID_SPAN
_time_ns = time.time_ns
_LOW_64 = (1 << 64) - 1
_new_tuple = tuple.__new__
Scope = tuple[str, str]  # instrumentation scope: (name, version)
Step = tuple[str, int, int, "str | None"]  # a step's name, start and end (unix ns), error type
# A step done after its parent span ended (the spend-log write): exported as an INTERNAL child
# of that span, with an id made by the exporter; no span object on the request path.
LateStep = tuple[Scope, SpanContext, Step]


class Facts(Protocol):
    """What one of our spans knows, as references to objects that no longer change (the
    deployment, the request, the answer): turned into its attributes by the export thread
    (telemetry/records.py), not on the request path."""

    def encode(self) -> bytes:
        """The span's attributes as OTLP ``Span.attributes`` fields."""
        ...

    def measure(self) -> None:
        """Make the metrics the span's facts carry, once: by the export thread, or where the
        span is dropped."""
        ...


class SpanQueue:
    """Ended spans waiting for the exporter: at most ``max_size``; past it a span is dropped
    and counted. ``wake`` is set when ``batch_size`` spans wait (the exporter's slice), so the
    exporter does not have to poll faster than its schedule under load."""

    __slots__ = ("_batch", "_items", "_max", "_on_drop", "wake")

    def __init__(self, max_size: int, batch_size: int, on_drop: Callable[[int], None]) -> None:
        self._items: deque[Queued] = deque()
        self._max = max_size
        self._batch = batch_size
        self._on_drop = on_drop
        self.wake = threading.Event()

    def put(self, span: Queued) -> None:
        items = self._items
        size = len(items)
        if size >= self._max:
            self._on_drop(1)
            if type(span) is LeanSpan and span.facts is not None:  # its metrics still count
                # telemetry never fails the request it measures
                with contextlib.suppress(Exception):
                    span.facts.measure()
            return
        items.append(span)  # deque.append is atomic: no lock on the request path
        if size + 1 == self._batch:
            self.wake.set()

    def take(self, limit: int) -> list[Queued]:
        items = self._items
        popleft = items.popleft
        return [popleft() for _ in range(min(limit, len(items)))]

    def __len__(self) -> int:
        return len(self._items)


class LeanSpan(trace.Span):
    """A sampled span: what it records, and the queue it goes to when it ends."""

    __slots__ = (
        "_queue",
        "attributes",
        "context",
        "end_ns",
        "events",
        "facts",
        "kind",
        "links",
        "name",
        "parent",
        "scope",
        "start_ns",
        "status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        scope: Scope,
        queue: SpanQueue,
        start_ns: int,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.scope = scope
        self._queue = queue
        self.start_ns = start_ns
        self.end_ns = 0
        self.status: Status | None = None
        # (name, unix ns, attributes); (span context, attributes): rare, so None until used
        self.events: list[tuple[str, int, Attributes]] | None = None
        self.links: list[tuple[SpanContext, Attributes]] | None = None
        self.facts: Facts | None = None

    def end(self, end_time: int | None = None) -> None:
        if self.end_ns:
            return  # the API allows a second end(); only the first counts
        self.end_ns = end_time or _time_ns()
        self._queue.put(self)

    def get_span_context(self) -> SpanContext:
        return self.context

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if not self.end_ns:
            self.attributes.update(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if not self.end_ns:
            self.attributes[key] = value

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.end_ns:
            return
        if self.events is None:
            self.events = []
        self.events.append((name, timestamp or _time_ns(), dict(attributes or {})))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self.end_ns or not context.is_valid:
            return
        if self.links is None:
            self.links = []
        self.links.append((context, dict(attributes or {})))

    def update_name(self, name: str) -> None:
        if not self.end_ns:
            self.name = name

    def is_recording(self) -> bool:
        return not self.end_ns

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_ns:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        # As the SDK: OK is final, and UNSET never overwrites what was set.
        if self.status is not None and self.status.status_code is StatusCode.OK:
            return
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The SDK's ``exception`` event (type, message, stack trace)."""
        stack = "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__)
        )
        event: dict[str, AttributeValue] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": stack,
            "exception.escaped": str(escaped),
        }
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)


class LeanTracer(trace.Tracer):
    def __init__(self, scope: Scope, sampler: Sampler, queue: SpanQueue) -> None:
        self._scope = scope
        self._bound = sampler.bound
        self._follows_parent = sampler.parent_based
        self._queue = queue

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent_span = current_span(context)
        parent: SpanContext | None
        if parent_span is _INVALID_SPAN:  # a new trace (a request without traceparent)
            parent = None
        elif type(parent_span) is LeanSpan:
            parent = parent_span.context
        else:
            parent = parent_span.get_span_context()
        # A SpanContext is a tuple: (trace id, span id, is remote, flags, trace state, valid);
        # its properties are Python functions, read here several times a span.
        if parent is not None and parent[5]:
            trace_id, state = parent[0], parent[4]
            if self._follows_parent:  # Sampler.sampled's rules, inline
                sampled = bool(parent[3] & 1)
                if not sampled and not parent[2]:
                    # Inside a trace this process chose not to record: nothing of its spans
                    # is recorded nor told apart, so the parent's own non-recording span
                    # stands for its children (what goes downstream is the same trace, flag
                    # off).
                    return parent_span
            else:
                sampled = (trace_id & _LOW_64) < self._bound
        else:
            parent, trace_id, state = None, _new_trace_id(), _DEFAULT_STATE
            sampled = (trace_id & _LOW_64) < self._bound
        # SpanContext's fields as its constructor would set them, without its range checks:
        # both ids are valid by construction (a valid parent's trace id, or a new one; never 0).
        if not sampled:
            fields = (trace_id, getrandbits(64) or 1, False, _NOT_SAMPLED, state, True)
            return NonRecordingSpan(_new_tuple(SpanContext, fields))
        own = _new_tuple(
            SpanContext, (trace_id, getrandbits(64) or 1, False, _SAMPLED, state, True)
        )
        span = LeanSpan(
            name,
            own,
            parent,
            kind,
            dict(attributes) if attributes else {},
            self._scope,
            self._queue,
            start_time or _time_ns(),
        )
        for link in links or ():
            span.add_link(link.context, link.attributes)
        return span

    def put_step(self, parent: SpanContext, step: Step) -> None:
        """A step done under ``parent`` after that span ended (``LateStep``)."""
        self._queue.put((self._scope, parent, step))

    @_agnosticcontextmanager  # the API's base declares this decorator's type
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanTracerProvider(trace.TracerProvider):
    """Hands out tracers that record into ``queue``; ``shutdown`` is the exporter's (the
    provider owns no thread)."""

    def __init__(
        self, sampler: Sampler, queue: SpanQueue, on_shutdown: Callable[[], None] = lambda: None
    ) -> None:
        self.sampler = sampler
        self.queue = queue
        self._tracers: dict[Scope, LeanTracer] = {}
        self._on_shutdown = on_shutdown

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        scope = (instrumenting_module_name, instrumenting_library_version or "")
        tracer = self._tracers.get(scope)
        if tracer is None:
            tracer = self._tracers[scope] = LeanTracer(scope, self.sampler, self.queue)
        return tracer

    def shutdown(self) -> None:
        self._on_shutdown()


Queued = LeanSpan | LateStep  # what waits for the exporter
_SPANS = frozenset({LeanSpan, NonRecordingSpan})


def current_span(context: Context | None = None) -> trace.Span:
    """``trace.get_current_span``, without its ABC ``isinstance`` for the spans made here
    (several look-ups a request)."""
    span = (context if context is not None else get_context()).get(_SPAN_KEY)
    if type(span) in _SPANS:
        return span  # type: ignore[return-value]  # its type was just checked
    if span is None:  # a context without a span: a new trace's (the API's answer, directly)
        return trace.INVALID_SPAN
    return _get_current_span(context)


def _new_trace_id() -> int:
    # 0 is the invalid id: the chance is 2**-128, but a span must never carry it.
    return getrandbits(128) or 1
