"""The spans chatgate emits, through the OpenTelemetry API only.

With no SDK configured the API hands out non-recording spans: every attribute below is built
only behind ``span.is_recording()``, so a call pays for one no-op span and nothing else. With
the gateway's lean recorder, a span of ours gets its facts instead (telemetry/records.py):
its attributes are written by the export thread. The
application's SDK (``trace.set_tracer_provider``) is used, unless a provider was given to
``set_tracer_provider`` here (the gateway does, so that its exporter serves only its spans).

An attempt is a CLIENT span ``chat {model}`` (or ``embeddings {model}``); a routed call is an
INTERNAL span ``chatgate.route {model_name}`` holding its attempts, except inside a gateway
request (server/tracing.py marks its context), whose server span already holds them and
reports the group that answered; the router says which attempt of which deployment is
running through a context variable (``attempt``), read when the attempt span starts.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Callable, MutableMapping
from contextvars import Token
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)

from chatgate.telemetry import content, metrics, semconv
from chatgate.telemetry.current import (
    IN_REQUEST,
    attach,
    context_with,
    detach,
    get_context,
)
from chatgate.telemetry.propagation import inject_span
from chatgate.telemetry.recorder import LeanSpan, current_span
from chatgate.telemetry.records import AttemptFacts, RouteFacts
from chatgate.types import ChatResponse

if TYPE_CHECKING:
    from chatgate.embedding_types import EmbeddingRequest, EmbeddingResponse
    from chatgate.providers.base import Deployment
    from chatgate.types import ChatRequest

__all__ = [
    "NO_SPAN",
    "Current",
    "attempt",
    "capture_content",
    "current",
    "end",
    "end_attempt",
    "enter",
    "inject",
    "leave",
    "mark_failed",
    "off",
    "on_stream_end",
    "served_by",
    "set_tracer_provider",
    "start_chat",
    "start_embeddings",
    "start_route",
    "tracer",
]

_SCOPE = "chatgate"
NO_SPAN = trace.INVALID_SPAN  # what the span functions return when nobody collects spans
_provider: TracerProvider | None = None
_tracer: Tracer | None = None
# The variable the OpenTelemetry GenAI instrumentations read for the same switch.
_capture = (
    os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() == "true"
)
# (deployment id, model group, attempt number) of the attempt the router is running.
_attempt: contextvars.ContextVar[tuple[str, str, int] | None] = contextvars.ContextVar(
    "chatgate_attempt", default=None
)
_NULL = contextlib.nullcontext()

FinishCallback = Callable[[Any, BaseException | None], None]


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """Use ``provider`` for chatgate's spans (None: the application's global one)."""
    global _provider, _tracer
    _provider, _tracer = provider, None


def capture_content(on: bool) -> None:
    """Record prompts and answers (scrubbed) on attempt spans: off by default."""
    global _capture
    _capture = on


# The API's own providers: no SDK is set up, nothing would be recorded.
_API_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def off() -> bool:
    """Nobody collects spans: skip even the no-op span objects and context switches. Each
    call re-checks, so an SDK set up later is picked up. ``get_tracer_provider()`` looks in
    os.environ on every call until a provider is set (1 us, several times a request): the
    module global it guards answers the common case first."""
    if _provider is not None:
        return False
    if trace._TRACER_PROVIDER is None and not _PROVIDER_FROM_ENV:
        return True
    return type(trace.get_tracer_provider()) in _API_PROVIDERS


def tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        source = _provider or trace.get_tracer_provider()
        from chatgate import __version__  # the package root imports the client, which imports us

        _tracer = source.get_tracer(_SCOPE, __version__)
    return _tracer


# --- attempts ---------------------------------------------------------------------------------


def attempt(deployment_id: str, group: str, number: int) -> _Marked | None:
    """The marker to enter around the attempt; None when nobody collects spans (the caller
    then makes no ``with``: two calls saved on every attempt)."""
    # ``_provider``: the gateway's recorder, so spans are collected, without off()'s call
    if _provider is None and off():
        return None
    return _Marked((deployment_id, group, number))


class _Marked:
    """The attempt under way, for the attempt span to read (a class: no generator a call)."""

    __slots__ = ("_marked", "_token")

    def __init__(self, marked: tuple[str, str, int]) -> None:
        self._marked = marked

    def __enter__(self) -> None:
        self._token = _attempt.set(self._marked)

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        _attempt.reset(self._token)


def _routed(values: semconv.Attributes) -> semconv.Attributes:
    """An attempt's attributes, with which attempt of which deployment it is when routed."""
    routed = _attempt.get()
    if routed is not None:
        values[semconv.DEPLOYMENT_ID] = routed[0]
        values[semconv.MODEL_GROUP] = routed[1]
        values[semconv.ATTEMPT] = routed[2]
    return values


def start_chat(request: ChatRequest, deployment: Deployment) -> Span:
    if _provider is None and off():  # before the span's name and attributes are built
        return trace.INVALID_SPAN
    span = (_tracer or tracer()).start_span(f"chat {request.model}", kind=SpanKind.CLIENT)
    if type(span) is LeanSpan:  # facts only: the export thread makes the attributes
        span.facts = AttemptFacts(request, deployment, _attempt.get())
    elif span.is_recording():
        span.set_attributes(_routed(semconv.chat_request_attributes(request, deployment)))
    if _capture and span.is_recording():
        span.set_attribute(
            semconv.INPUT_MESSAGES, content.input_messages(request.messages, deployment)
        )
    return span


def start_embeddings(request: EmbeddingRequest, deployment: Deployment) -> Span:
    if off():
        return trace.INVALID_SPAN
    span = tracer().start_span(f"embeddings {request.model}", kind=SpanKind.CLIENT)
    if span.is_recording():
        span.set_attributes(_routed(semconv.embedding_request_attributes(request, deployment)))
    return span


def inject(span: Span, headers: MutableMapping[str, str]) -> None:
    """Put ``traceparent`` (and the propagators' other headers) on an upstream request. With
    no SDK, the caller's own context (if it has one) is passed on, as the API would."""
    if type(span) is LeanSpan:  # valid by construction
        inject_span(span, headers)
    elif span is trace.INVALID_SPAN:
        # An empty OpenTelemetry context (the usual case without an SDK) has no span to pass.
        if not get_context():
            return
        if current_span().get_span_context().is_valid:
            propagate.inject(headers)
    elif span.get_span_context().is_valid:
        inject_span(span, headers)


def end_attempt(
    span: Span,
    deployment: Deployment,
    started: float,
    response: ChatResponse | EmbeddingResponse | None = None,
    error: BaseException | None = None,
    *,
    operation: str = "chat",
    cancelled: bool = False,
) -> None:
    """End an attempt span with what came back, and record the GenAI client metrics."""
    if span is trace.INVALID_SPAN:  # nobody collects spans; metrics may still be recorded
        metrics.record_attempt(deployment, operation, started, response, error)
        return
    facts = span.facts if type(span) is LeanSpan else None
    if type(facts) is AttemptFacts:
        answer = response if isinstance(response, ChatResponse) else None
        facts.ended(answer)
        if answer is not None and _capture:
            span.set_attribute(semconv.OUTPUT_MESSAGES, content.output_messages(answer, deployment))
        if cancelled:
            span.set_attribute("chatgate.stream.cancelled", True)
        if error is not None:
            mark_failed(span, error)
            facts.error = type(error).__name__
        meter = metrics.lean()
        if meter is not None:  # the export thread makes the metrics from the facts
            facts.meter, facts.seconds = meter, time.perf_counter() - started
            span.end()
            return
    elif span.is_recording():
        if isinstance(response, ChatResponse):
            span.set_attributes(semconv.chat_response_attributes(response))
            if _capture:
                span.set_attribute(
                    semconv.OUTPUT_MESSAGES, content.output_messages(response, deployment)
                )
        elif response is not None:
            span.set_attributes(semconv.embedding_response_attributes(response))
        if cancelled:
            span.set_attribute("chatgate.stream.cancelled", True)
        mark_failed(span, error)
    metrics.record_attempt(deployment, operation, started, response, error)
    span.end()


def on_stream_end(
    span: Span, deployment: Deployment, started: float, then: FinishCallback | None
) -> FinishCallback | None:
    """The stream's ``on_finish``: end the attempt span when the stream ends (completed,
    cancelled or failed), then call the owner's callback."""
    if span is trace.INVALID_SPAN and not metrics.enabled():
        return then  # nothing to wait for
    if not span.is_recording() and not metrics.enabled():
        span.end()  # a no-op span: nothing to wait for
        return then

    def finished(response: Any, error: BaseException | None) -> None:
        cancelled = response is None and error is None
        end_attempt(span, deployment, started, response, error, cancelled=cancelled)
        if then is not None:
            then(response, error)

    return finished


def mark_failed(span: Span, error: BaseException | None) -> None:
    if error is None:
        return
    kind = type(error).__name__
    span.set_attribute(semconv.ERROR_TYPE, kind)
    # Only the class: an upstream's message is scrubbed of credentials, but it may quote the
    # prompt, which belongs in a span only when content capture is on.
    span.set_status(Status(StatusCode.ERROR, kind))


# --- routed calls and gateway steps -------------------------------------------------------------


def start_route(model_name: str) -> Span:
    """The routed call's span; none inside a gateway request: its attempts are the request
    span's children (or the cache lookup's), and the request span says which group answered
    (``chatgate.served_group``), so a route span there would repeat it at the cost of a span
    a request (docs/observability.md)."""
    if _provider is None and off():
        return trace.INVALID_SPAN
    if get_context().get(IN_REQUEST):
        return trace.INVALID_SPAN
    span = (_tracer or tracer()).start_span(f"chatgate.route {model_name}", kind=SpanKind.INTERNAL)
    if type(span) is LeanSpan:
        span.facts = RouteFacts(model_name)
    elif span.is_recording():
        span.set_attribute(semconv.MODEL_GROUP, model_name)
    return span


def enter(span: Span) -> Token[Context] | None:
    """``current(span)`` without a ``with``: the token for ``leave``, or None when there is
    nothing to make current (then nothing to leave)."""
    if span is trace.INVALID_SPAN:
        return None
    if type(span) is NonRecordingSpan and span is current_span():
        return None
    return attach(context_with(span))


def leave(token: Token[Context]) -> None:
    detach(token)


def current(span: Span) -> contextlib.AbstractContextManager[Any]:
    """Make ``span`` the parent of what starts inside; ending it stays the caller's."""
    if span is trace.INVALID_SPAN:
        return _NULL
    if type(span) is NonRecordingSpan and span is current_span():
        return _NULL  # a step of a trace not recorded: its span is already current
    return Current(span)


def end(span: Span, error: BaseException | None = None) -> None:
    if span is trace.INVALID_SPAN:
        return
    if error is not None and span.is_recording():
        mark_failed(span, error)
    span.end()


def served_by(group: str, requested: str) -> None:
    """The routed call was answered by ``group``: a fallback when it is not ``requested``."""
    if _provider is None and off():
        return
    context = get_context()
    if context.get(IN_REQUEST):  # no route span (start_route): the request reports it
        return
    span = current_span(context)
    facts = span.facts if type(span) is LeanSpan else None
    if type(facts) is RouteFacts:
        facts.served = group
    elif span.is_recording():
        span.set_attributes(
            {semconv.FALLBACK_TAKEN: group != requested, semconv.SERVED_GROUP: group}
        )


# --- the sampled path: the context switches of a recorded span ---------------------------------
# What ``trace.use_span(span, end_on_exit=False, record_exception=False,
# set_status_on_exception=False)`` does, attach and detach, without its generator and exception
# handling (nothing to do with both off): a third of its CPU, paid several times a request.


class Current:
    """``span`` made current inside the ``with``; ending it stays the caller's."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._token = attach(context_with(self._span))
        return self._span

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        detach(self._token)
