"""One pooled aiohttp session per event loop, and the two ways we use it: a whole answer, or
a response body read chunk by chunk as it arrives.

aiohttp was chosen over httpx by measurement (docs/performance.md). aiohttp's own exceptions
never leave this module: they become APIConnectionError / APITimeoutError.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, replace

import aiohttp
import yarl

from chatgate.errors import APIConnectionError, APITimeoutError
from chatgate.transport.request import HttpRequest

__all__ = ["Response", "Timeouts", "aclose", "open_response", "read_chunks", "send"]


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

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
    weakref.WeakKeyDictionary()
)


class _LoopState:
    """A session plus an async generator whose ``finally`` closes it. ``asyncio.run`` (and
    every asyncio.Runner) closes live async generators before closing the loop, which is the
    only hook asyncio offers to clean up per-loop resources without the caller's help."""

    __slots__ = ("closer", "session")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.closer: AsyncGenerator[None, None] = _close_at_loop_shutdown(session)


async def _close_at_loop_shutdown(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await session.close()


async def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    state = _sessions.get(loop)
    if state is None or state.session.closed:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
        )
        # No cookie jar: an API client has no use for cookies, and aiohttp's jar filters and
        # stores them on every request and response.
        session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )
        state = _sessions[loop] = _LoopState(session)
        await state.closer.__anext__()
    return state.session


async def aclose() -> None:
    """Close this loop's pooled connections (optional: they are closed at loop shutdown)."""
    state = _sessions.pop(asyncio.get_running_loop(), None)
    if state is not None:
        await state.closer.aclose()


def _url(request: HttpRequest) -> yarl.URL:
    """Send the path exactly as the adapter encoded it: signed requests (AWS SigV4) sign the
    encoded path, and yarl would otherwise re-quote it (e.g. %3A back to ':')."""
    return _parsed_url(request.url)


@functools.lru_cache(maxsize=1024)  # a handful of upstream URLs, parsed once each
def _parsed_url(url: str) -> yarl.URL:
    return yarl.URL(url, encoded=True)


def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    # Not keyed on Timeouts: a router cuts ``total`` to each call's deadline, so it differs
    # every time, while connect and read stay the deployment's own.
    return _aiohttp_timeout(timeouts.connect, timeouts.read)


@functools.lru_cache(maxsize=64)
def _aiohttp_timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)


def _translate(exc: BaseException, request: HttpRequest) -> APIConnectionError:
    host = request.url.split("/")[2] if "//" in request.url else request.url
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError(f"timed out talking to {host}")
    return APIConnectionError(f"connection to {host} failed: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


async def send(request: HttpRequest, timeouts: Timeouts) -> Response:
    session = await _session()
    try:
        async with asyncio.timeout(timeouts.total):
            async with session.request(
                request.method,
                _url(request),
                data=request.body,
                headers=request.headers,
                timeout=_client_timeout(timeouts),
            ) as resp:
                body = await resp.read()
                return Response(resp.status, resp.headers, body)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _translate(exc, request) from exc


async def open_response(request: HttpRequest, timeouts: Timeouts) -> aiohttp.ClientResponse:
    """Send and return as soon as the status and headers are in; the caller reads the body
    with ``read_chunks`` and must ``close()`` (abort) or ``release()`` (reuse) the response."""
    session = await _session()
    try:
        async with asyncio.timeout(timeouts.total):
            return await session.request(
                request.method,
                _url(request),
                data=request.body,
                headers=request.headers,
                timeout=_client_timeout(timeouts),
            )
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _translate(exc, request) from exc


async def read_chunks(resp: aiohttp.ClientResponse, request: HttpRequest) -> AsyncIterator[bytes]:
    """The body as it arrives, in whatever pieces the network delivers."""
    try:
        async for data in resp.content.iter_any():
            yield data
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _translate(exc, request) from exc
