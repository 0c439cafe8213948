"""The default transport: one pooled aiohttp session per event loop.

aiohttp was chosen over httpx by measurement (docs/performance.md). aiohttp's own exceptions
and objects never leave this module: errors become APIConnectionError / APITimeoutError, and
responses are wrapped in ``AiohttpResponse`` (a ``TransportResponse``).
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import aiohttp
import yarl

from chatgate.transport.base import Timeouts, connection_error
from chatgate.transport.request import HttpRequest

__all__ = ["AiohttpResponse", "AiohttpTransport"]


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


@functools.lru_cache(maxsize=1024)  # a handful of upstream URLs, parsed once each
def _parsed_url(url: str) -> yarl.URL:
    """Send the path exactly as the adapter encoded it: signed requests (AWS SigV4) sign the
    encoded path, and yarl would otherwise re-quote it (e.g. %3A back to ':')."""
    return yarl.URL(url, encoded=True)


@functools.lru_cache(maxsize=64)
def _aiohttp_timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    # Not keyed on Timeouts: a router cuts ``total`` to each call's deadline, so it differs
    # every time, while connect and read stay the deployment's own.
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)


class AiohttpResponse:
    __slots__ = ("_request", "_resp")

    def __init__(self, resp: aiohttp.ClientResponse, request: HttpRequest) -> None:
        self._resp = resp
        self._request = request

    @property
    def status(self) -> int:
        return self._resp.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._resp.headers

    @property
    def at_eof(self) -> bool:
        return self._resp.content.at_eof()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._resp.content.iter_any():
                yield data
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise connection_error(exc, self._request) from exc

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise connection_error(exc, self._request) from exc

    def release(self) -> None:
        self._resp.release()

    def close(self) -> None:
        self._resp.close()


class AiohttpTransport:
    """Keep-alive pools without a limit (the router bounds concurrency), DNS cached 5 min."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    async def _new_session(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
        )
        # No cookie jar: an API client has no use for cookies, and aiohttp's jar filters
        # and stores them on every request and response.
        session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )
        state = self._sessions[loop] = _LoopState(session)
        await state.closer.__anext__()
        return session

    async def handle(self, request: HttpRequest, timeouts: Timeouts) -> AiohttpResponse:
        loop = asyncio.get_running_loop()
        state = self._sessions.get(loop)
        if state is not None and not state.session.closed:
            session = state.session  # no coroutine to await for the usual call
        else:
            session = await self._new_session(loop)
        try:  # the whole call's deadline (timeouts.total) is the caller's: transport/http.py
            resp = await session.request(
                request.method,
                _parsed_url(request.url),
                data=request.body,
                headers=request.headers,
                timeout=_aiohttp_timeout(timeouts.connect, timeouts.read),
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise connection_error(exc, request) from exc
        return AiohttpResponse(resp, request)

    async def aclose(self) -> None:
        state = self._sessions.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.closer.aclose()
