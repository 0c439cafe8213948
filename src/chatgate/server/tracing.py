"""One trace per gateway request: a pure ASGI middleware that opens the SERVER span (HTTP
semantic conventions), continuing the caller's trace when the request carries a W3C
``traceparent``; the steps inside (authentication, budget hold, cache, the routed call and its
attempts) are its children, and the spend-log write, done later off the request path, is
parented to it through the span context kept on the request's context.

The app is wrapped only when the gateway exports telemetry: with it off, requests do not pass
through here at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from chatgate.server.asgi import Receive, Scope, Send, StatusWatch
from chatgate.server.context import RequestContext
from chatgate.server.request_tags import row_tags
from chatgate.telemetry import metrics, semconv, spans, steps
from chatgate.telemetry.current import attach, context_with, detach
from chatgate.telemetry.recorder import LeanSpan, LeanTracer, current_span
from chatgate.telemetry.records import ServerFacts, Static, context_attributes

__all__ = ["TracingMiddleware", "annotate", "spend_written"]

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})


def _carrier(scope: Scope) -> dict[str, str]:
    return {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _PROPAGATED}


class TracingMiddleware:
    """``route_of(path)``: the route template for ``http.route`` and the span name (None for
    paths the gateway does not serve, so a scan of random URLs does not make random names).
    ``untraced``: paths left out (health probes and metric scrapes, every few seconds)."""

    def __init__(
        self,
        app: ASGIApp,
        route_of: Callable[[str], str | None],
        untraced: frozenset[str] = frozenset(),
    ) -> None:
        self._app = app
        self._route_of = route_of
        self._untraced = untraced
        # (method, path) -> the span's name and its request attributes, for the routes the
        # gateway serves (a bounded set): built once (and encoded once), not per request.
        self._named: dict[tuple[str, str, str], tuple[str, Static]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._untraced:
            await self._app(scope, receive, send)
            return
        carrier = _carrier(scope)
        # No trace headers: nothing for the propagators to find, and a new trace all the same.
        parent = propagate.extract(carrier) if carrier else Context()
        name, static = self._name_of(scope["method"], scope["path"], scope.get("scheme", "http"))
        tracer = spans.tracer()
        if type(tracer) is LeanTracer:  # the span records facts, encoded by the export thread
            span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
            facts = None
            if type(span) is LeanSpan:
                facts = span.facts = ServerFacts(static)
        else:  # an SDK's sampler may look at the attributes
            span = tracer.start_span(
                name, context=parent, kind=SpanKind.SERVER, attributes=static.attributes
            )
            facts = None
        # No coroutine of its own per message; a stream's body bypasses it (StatusWatch.plain).
        sending = StatusWatch(send)
        # The span made current, the context marked as a request's: a routed call inside is
        # no span of its own (spans.start_route).
        token = attach(context_with(span, request=True))
        try:
            await self._app(scope, receive, sending)
        except BaseException as exc:
            span.set_attribute(semconv.ERROR_TYPE, type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            detach(token)
            status = sending.status
            if status:
                if facts is not None:
                    facts.status = status
                else:
                    span.set_attribute("http.response.status_code", status)
                if status >= 500:  # a server span's 4xx is the client's error, not ours
                    span.set_attribute(semconv.ERROR_TYPE, str(status))
                    span.set_status(Status(StatusCode.ERROR))
            span.end()

    def _name_of(self, method: str, path: str, scheme: str) -> tuple[str, Static]:
        key = (method, path, scheme)
        found = self._named.get(key)
        if found is not None:
            return found
        route = self._route_of(path)
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scheme,
        }
        if route is None:  # a path we do not serve: not kept, there is no end to them
            return method, Static(attrs)
        attrs["http.route"] = route
        named = (f"{method} {route}", Static(attrs))
        if len(self._named) < _MAX_NAMED:  # path parameters make routes many paths
            self._named[key] = named
        return named


_MAX_NAMED = 4096


def annotate(ctx: RequestContext) -> None:
    """Our attributes on the request's span, once the request is over; keep its context on
    ``ctx`` for the spend write."""
    if ctx.cache_status is not None and ctx.requested_model is not None:
        metrics.record_cache(ctx.cache_status, ctx.requested_model)
    span = current_span()
    if type(span) is LeanSpan:
        if span.end_ns:  # ended: nothing more is recorded (as is_recording says)
            return
        ctx.span_context = span.context
    elif span.is_recording():
        ctx.span_context = span.get_span_context()
    else:
        return
    values = (
        ctx.request_id,
        ctx.key_id,
        ctx.user_id,
        ctx.team_id,
        ctx.requested_model,
        ctx.deployment,
        ctx.served_group,
        ctx.cache_status,
        ctx.error_class,
        row_tags(ctx.key, ctx.tags),  # the spend row's: the key's tags first
        ctx.cost,
        ctx.attempts,
        ctx.fallback,
    )
    facts = span.facts if type(span) is LeanSpan else None
    if type(facts) is ServerFacts:  # the values as they are now, encoded by the export thread
        facts.request = values
    else:
        span.set_attributes(context_attributes(values))


def spend_written(ctx: RequestContext, start_ns: int, error: BaseException | None = None) -> None:
    """The spend-log write of a finished request, from ``start_ns`` until now, as a child of
    its span (the request is over by now: the write runs off its path); ``ctx.span_context``
    is set: the request was traced."""
    steps.step_done("chatgate.spend.write", ctx.span_context, start_ns, error)
