"""GatewayRequest: what a route handler gets, in one object (the ASGI triple, the config the
request runs on, its context and its body), and how an answer leaves: the status, the error
and the ``x-chatgate-*`` headers of a request are written here and nowhere else.

One is made per request, by the router in app.py, after the middleware has authenticated it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chatgate.errors import APIError
from chatgate.server.asgi import Receive, Scope, Send, StatusWatch, header, send_json, start_stream
from chatgate.server.context import RequestContext
from chatgate.server.state import GatewayState

__all__ = [
    "CTX",
    "STATE",
    "GatewayRequest",
    "failed",
    "response_headers",
    "stream_failed",
    "timed_out",
]

# Where the middleware leaves what it learned, in the ASGI scope (as starlette's scope["state"]):
STATE = "chatgate.state"  # the GatewayState this request runs on, even across a reload
CTX = "chatgate.ctx"  # its RequestContext; absent on probes and scrapes (no usage record)


@dataclass(slots=True, eq=False)
class GatewayRequest:
    scope: Scope
    receive: Receive
    send: Send
    state: GatewayState
    ctx: RequestContext
    body: bytes = b""  # read before the handler runs on the POST routes that take a JSON body

    @property
    def path(self) -> str:
        return self.scope["path"]  # type: ignore[no-any-return]  # an ASGI scope's path is str

    def header(self, name: bytes) -> str | None:
        return header(self.scope, name)

    def keep_content(self, content: Any) -> None:
        """What the client asked, for the access log: only with ``log_content``."""
        if self.ctx.log_content:
            self.ctx.content_in = content

    async def answer(
        self, body: Any, *, status: int = 200, extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        """A whole JSON answer (bytes are sent as they are) with the x-chatgate-* headers."""
        ctx = self.ctx
        ctx.status = status
        headers = response_headers(ctx)
        headers.extend(extra)
        await send_json(self.send, status, body, headers)

    async def start_stream(self) -> None:
        """The head of an SSE answer; the body follows through ``send``."""
        self.ctx.status = 200
        await start_stream(self.send, response_headers(self.ctx))
        self.send = StatusWatch.plain(self.send)  # the body's messages go straight out

    def answered(self, status: int) -> None:
        """The status of an answer sent without the x-chatgate-* headers (the admin API)."""
        self.ctx.status = status


def response_headers(ctx: RequestContext) -> list[tuple[str, str]]:
    """The x-chatgate-* headers as known now; the overhead so far is the access log's."""
    overhead = (time.perf_counter() - ctx.started - ctx.upstream_s) * 1000.0
    ctx.overhead_ms = overhead
    return ctx.header_list(overhead)


def failed(ctx: RequestContext, exc: BaseException, status: int, code: str | None = None) -> None:
    """Record the failure: the error's class, or the gateway's own error code (the attempts
    a Router made are serving's to record, where the error left the router)."""
    ctx.error_class = code or type(exc).__name__
    ctx.status = status
    tried = getattr(exc, "attempt_log", None)
    ctx.refused = status < 500 and not tried and not isinstance(exc, APIError)


def stream_failed(ctx: RequestContext, exc: BaseException) -> None:
    """An upstream failure after the stream's head was sent (the status stays 200)."""
    ctx.error_class = type(exc).__name__


def timed_out(ctx: RequestContext, status: int, error_class: str) -> None:
    """The client went (499) or was too slow (408) before the body was read."""
    ctx.status = status
    ctx.error_class = error_class
