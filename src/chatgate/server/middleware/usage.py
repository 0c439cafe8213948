"""UsageMiddleware: opens each request's RequestContext (ids, tags, the config's
``log_content``), counts it in flight, and when the request is over, however it ended, hands
the context to the usage pipeline (metrics, access log, spend record: off the request path).

Probes and scrapes (``untracked``) get no context and leave no record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container

from prometheus_client import Gauge

from chatgate.server.asgi import ASGIApp, Receive, Scope, Send
from chatgate.server.context import RequestContext
from chatgate.server.pipeline import UsagePipeline
from chatgate.server.request import CTX, STATE

__all__ = ["UsageMiddleware"]


class UsageMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        pipeline: UsagePipeline,
        in_flight: Gauge,
        route_of: Callable[[str], str],
        untracked: Container[tuple[str, str]],
        on_end: Callable[[RequestContext], None] | None = None,
    ) -> None:
        """``route_of(path)`` is the route label of metrics and the log (bounded, never the
        raw path); ``untracked`` holds the (method, path) pairs that leave no record;
        ``on_end(ctx)`` runs when the request is over, before the record leaves (tracing)."""
        self.app = app
        self._pipeline = pipeline
        self._in_flight = in_flight
        self._route_of = route_of
        self._untracked = untracked
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.open(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            if ctx is not None:
                self.close(ctx)

    def open(self, scope: Scope) -> RequestContext | None:
        """The request's context, in the scope and counted in flight (None: untracked)."""
        path = scope["path"]
        if (scope["method"], path) in self._untracked:
            return None
        ctx = scope[CTX] = RequestContext.from_scope(
            scope, self._route_of(path), log_content=scope[STATE].log_content
        )
        self._in_flight.inc()
        return ctx

    def close(self, ctx: RequestContext) -> None:
        """The request is over, however it ended: its record goes to the pipeline."""
        self._in_flight.dec()
        ctx.ended = time.perf_counter()
        if self._on_end is not None:
            self._on_end(ctx)
        self._pipeline.submit(ctx)
