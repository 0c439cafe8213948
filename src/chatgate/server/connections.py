"""What one client may hold of `chatgate serve`: a deadline for a request's headers, a deadline
for its body, and a cap on open connections answered with a clear 503.

uvicorn closes idle keep-alive connections but nothing else: a client that opens a connection
and trickles its headers (slowloris) or its body holds the socket, a file descriptor and a
parser forever, and `limit_concurrency` answers a plain-text 503 that names nothing. This is
uvicorn's httptools protocol with one timer per connection, armed only while a request is
being read and only when it did not arrive in one read (so the usual request costs no timer):

- headers: from the connection's start, or from a new request's first byte on a kept-alive
  one, the request line and headers must arrive within ``header_timeout_s``. A request begun
  but unfinished gets 408 and the connection is closed; one that never sent a byte is closed.
- body: once the headers are in, the whole body must arrive within ``body_timeout_s``: 408
  (the app sees the client gone; the access log says 408) and the connection is closed. Time
  while we stopped reading (flow control, pipelining) is not the client's and does not count.
- beyond ``max_connections`` open connections in this process, a request gets 503
  ``too_many_connections`` with Retry-After, and its connection is closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chatgate.server.asgi import (
    DISCONNECT_HOOK,
    READ_TIMEOUT,
    DisconnectHook,
    Receive,
    Scope,
    Send,
)

__all__ = ["ConnectionLimits", "LimitedHttpProtocol", "fit_descriptor_limit", "protocol"]

log = logging.getLogger("chatgate.server")

_WAITING, _HEADERS, _BODY, _IDLE = range(4)  # what the connection is reading
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_REFUSAL_LOG_PERIOD_S = 60.0
# Descriptors the process needs besides one per client connection and one per upstream call
# in flight (the listening socket, the database, logs, the local model's pipes...).
_SPARE_DESCRIPTORS = 128


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 4096


def protocol(limits: ConnectionLimits) -> Any:
    """What to pass as uvicorn's ``http=``: picklable, so ``--workers`` processes get it too."""
    return functools.partial(LimitedHttpProtocol, limits=limits)


def fit_descriptor_limit(limits: ConnectionLimits) -> ConnectionLimits:
    """Raise this process's open-file limit (inherited by workers) to what ``max_connections``
    needs, a client socket and an upstream one each; where the hard limit forbids it, lower
    the cap to fit and say so, rather than fail accepting at EMFILE under load."""
    need = 2 * limits.max_connections + _SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return limits
    ceiling = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if ceiling > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    if ceiling >= need:
        return limits
    fitted = max(1, (ceiling - _SPARE_DESCRIPTORS) // 2)
    log.warning(
        "max_connections %d needs %d open files, this process may open %d (ulimit -n); "
        "serving at most %d connections: raise the limit to serve more",
        limits.max_connections,
        need,
        ceiling,
        fitted,
    )
    return ConnectionLimits(limits.header_timeout_s, limits.body_timeout_s, fitted)


class _Refusals:
    """Refused connections, logged once per period with their count rather than per request
    (a flood would otherwise write a line per refusal)."""

    def __init__(self) -> None:
        self.count = 0
        self.logged_at = -_REFUSAL_LOG_PERIOD_S

    def add(self, limit: int) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= _REFUSAL_LOG_PERIOD_S:
            log.warning(
                "over max_connections (%d): %d request(s) refused with 503 since the last report",
                limit,
                self.count,
            )
            self.count = 0
            self.logged_at = now


_refusals = _Refusals()  # per process, like the connections it counts


def _error_body(message: str, code: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "server_error", "code": code}})


@functools.cache
def _too_many(limit: int) -> Any:
    body = _error_body(
        f"the gateway has reached its limit of {limit} open connections "
        "(general_settings.max_connections); retry shortly",
        "too_many_connections",
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return refuse


# The parser's per-request callbacks call the base class by name: a super() object per call
# is measurable at this rate (several calls a request).
_Base = HttpToolsProtocol


class LimitedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._reading = _WAITING
        self._timer: asyncio.TimerHandle | None = None
        self._hook: DisconnectHook | None = None

    # --- the connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        if self._hook is not None:
            self._hook.fire()

    def data_received(self, data: bytes) -> None:
        _Base.data_received(self, data)
        if self._timer is None and self._reading in (_HEADERS, _BODY):
            self._arm()  # the request did not arrive in one read: from now on it is timed

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection is another protocol's from here on
        self._reading = _IDLE
        super().handle_websocket_upgrade()

    # --- the parser's callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        _Base.on_message_begin(self)
        self._reading = _HEADERS

    def on_headers_complete(self) -> None:
        if self._timer is not None:  # the usual request arrived in one read: no timer
            self._disarm()
        self._reading = _BODY
        limit = self._limits.max_connections
        if len(self.connections) <= limit:
            _Base.on_headers_complete(self)
            # the app's task starts on the next loop turn: the scope may still be given to
            self._hook = self.cycle.scope[DISCONNECT_HOOK] = DisconnectHook()  # type: ignore[literal-required]  # our key
            return
        _refusals.add(limit)
        app, self.app = self.app, _too_many(limit)
        try:
            _Base.on_headers_complete(self)
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        _Base.on_message_complete(self)
        if self._timer is not None:
            self._disarm()
        self._reading = _IDLE

    # --- the deadline ------------------------------------------------------------------------

    def _arm(self) -> None:
        limits = self._limits
        delay = limits.body_timeout_s if self._reading == _BODY else limits.header_timeout_s
        self._timer = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._reading == _IDLE:
            return
        if self.flow.read_paused:  # we stopped reading, not the client: its clock waits
            self._arm()
            return
        if self._reading == _WAITING:
            self.transport.close()
            return
        what = "body" if self._reading == _BODY else "headers"
        cycle = self.cycle if self._reading == _BODY else None
        if cycle is not None and cycle.response_started:  # answered early: just close
            self.transport.close()
            return
        if cycle is not None:
            cycle.scope[READ_TIMEOUT] = what  # type: ignore[literal-required]  # our key
            cycle.disconnected = True  # the app's answer, if it tries one, goes nowhere
            cycle.message_event.set()
            if self._hook is not None:
                self._hook.fire()
        seconds = self._limits.body_timeout_s if cycle else self._limits.header_timeout_s
        body = _error_body(
            f"the request {what} did not arrive within {seconds:g} s", f"{what}_timeout"
        )
        self.transport.write(_TIMEOUT_408 % (len(body), body))
        self.transport.close()
