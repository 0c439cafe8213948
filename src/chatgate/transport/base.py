"""The transport seam: one method, ``handle(request, timeouts) -> TransportResponse``.

Everything chatgate sends goes through the transport in force (chatgate.transport.http), so a
test can swap the network for a function (chatgate.testing.MockTransport), and another HTTP
client can be plugged in without touching the callers. Modelled on httpx's transports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from chatgate.errors import APIConnectionError, APITimeoutError
from chatgate.transport.request import HttpRequest

__all__ = [
    "DEFAULT_TIMEOUTS",
    "AsyncTransport",
    "Response",
    "Timeouts",
    "TransportResponse",
    "connection_error",
]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """connect: to open a connection; read: the longest silence while reading (for a stream,
    the idle timeout between chunks); total: the whole call, or for a stream until the
    response headers arrive."""

    connect: float = 10.0
    read: float = 300.0
    total: float = 600.0

    @classmethod
    def of(cls, value: float | Timeouts | None) -> Timeouts:
        if value is None:
            return DEFAULT_TIMEOUTS
        if isinstance(value, Timeouts):
            return value
        if value <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        seconds = float(value)
        base = DEFAULT_TIMEOUTS
        return replace(base, connect=min(base.connect, seconds), read=seconds, total=seconds)


DEFAULT_TIMEOUTS = Timeouts()


class TransportResponse(Protocol):
    """A response whose status and headers are in and whose body is read as it arrives.
    Reading raises APIConnectionError / APITimeoutError, never a client library's own errors.
    The reader ends it with ``release()`` (the body was read: the connection may be reused) or
    ``close()`` (left early: drop the connection)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def at_eof(self) -> bool:
        """The whole body has been read (a stream's last read also ended it)."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body in whatever pieces the network delivers."""
        ...

    async def read(self) -> bytes: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def handle(self, request: HttpRequest, timeouts: Timeouts) -> TransportResponse:
        """Send ``request``; return once the status and headers are in (raise
        APIConnectionError / APITimeoutError when they do not come). ``timeouts.connect`` and
        ``.read`` are the transport's to apply; the whole call's ``total`` is its caller's."""
        ...

    async def aclose(self) -> None:
        """Close the pooled connections of the running event loop."""
        ...


@dataclass(frozen=True, slots=True)
class Response:
    """A whole answer: what ``chatgate.transport.http.send`` returns."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def connection_error(exc: BaseException, request: HttpRequest) -> APIConnectionError:
    """A transport failure as chatgate's error, naming the host (never the full URL: a
    Gemini URL can carry the key)."""
    host = request.url.split("/")[2] if "//" in request.url else request.url
    if isinstance(exc, TimeoutError):
        return APITimeoutError(f"timed out talking to {host}")
    return APIConnectionError(f"connection to {host} failed: {type(exc).__name__}: {exc}")
