"""W3C ``traceparent`` / ``tracestate`` on an upstream request, written directly when that is
all the configured propagators would write.

``propagate.inject`` goes through the composite propagator, a context made for the purpose,
the TraceContext propagator's own look-ups and the baggage propagator's (about a tenth of what
tracing cost the event loop per request). When the global propagator is still the API's
default (``tracecontext`` and ``baggage``, or ``tracecontext`` alone) and the current context
carries no baggage, the headers are the span context's fields formatted as that propagator
formats them; anything else (other propagators, baggage) goes through the API as before.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from opentelemetry import propagate
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import DEFAULT_TRACE_STATE, Span, SpanContext, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chatgate.telemetry.current import context_with, get_context
from chatgate.telemetry.recorder import LeanSpan

__all__ = ["inject_span", "span_context_of", "traceparent_of"]

_W3C = (
    [TraceContextTextMapPropagator, W3CBaggagePropagator],
    [TraceContextTextMapPropagator],
)
_seen: tuple[TextMapPropagator | None, bool] = (None, False)
_TRACEPARENT = "00-{:032x}-{:016x}-{:02x}".format  # trace id, span id, flags
_NO_STATE = DEFAULT_TRACE_STATE


def _plain(textmap: TextMapPropagator) -> bool:
    """Whether ``textmap`` writes nothing but W3C trace context (and baggage, when there is
    some): the propagators are looked at once per global propagator set, not per request."""
    global _seen
    if textmap is not _seen[0]:
        kinds = (
            [type(p) for p in textmap._propagators]
            if type(textmap) is CompositePropagator
            else [type(textmap)]
        )
        _seen = (textmap, kinds in _W3C)
    return _seen[1]


def inject_span(span: Span, headers: MutableMapping[str, str]) -> None:
    """``propagate.inject(headers, context=<the current context with span>)``, for a span
    whose context is valid."""
    if _plain(propagate.get_global_textmap()) and not get_context().get(_BAGGAGE_KEY):
        # SpanContext is a tuple: (trace id, span id, is remote, flags, trace state, valid)
        trace_id, span_id, _, flags, state, _ = (
            span.context if type(span) is LeanSpan else span.get_span_context()
        )
        headers["traceparent"] = _TRACEPARENT(trace_id, span_id, flags)
        if state is not _NO_STATE and state:  # a TraceState's truth is a Python call
            headers["tracestate"] = state.to_header()
        return
    propagate.inject(headers, context=context_with(span))


def traceparent_of(context: SpanContext) -> str:
    """``context`` as a W3C ``traceparent`` value (to be stored, and read back by
    ``span_context_of``)."""
    return _TRACEPARENT(context.trace_id, context.span_id, context.trace_flags)


def span_context_of(traceparent: object) -> SpanContext | None:
    """The span context a stored ``traceparent`` names (None: none, or not a valid one)."""
    if not isinstance(traceparent, str):
        return None
    context = _TRACE_CONTEXT.extract({"traceparent": traceparent})
    found = get_current_span(context).get_span_context()
    return found if found.is_valid else None


_TRACE_CONTEXT = TraceContextTextMapPropagator()
