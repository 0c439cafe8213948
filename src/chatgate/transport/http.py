"""The one seam every outbound request passes: ``send`` (a whole answer) and
``open_response`` (a body read as it arrives), through the transport in force (aiohttp by
default; ``use_transport`` swaps it, as chatgate.testing.mock_transport does)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from chatgate.transport.aiohttp_transport import AiohttpTransport
from chatgate.transport.base import (
    DEFAULT_TIMEOUTS,
    AsyncTransport,
    Response,
    Timeouts,
    TransportResponse,
    connection_error,
)
from chatgate.transport.request import HttpRequest

__all__ = [
    "DEFAULT_TIMEOUTS",
    "Response",
    "Timeouts",
    "aclose",
    "current_transport",
    "open_response",
    "send",
    "use_transport",
]

_transport: AsyncTransport = AiohttpTransport()


def current_transport() -> AsyncTransport:
    return _transport


@contextlib.contextmanager
def use_transport(transport: AsyncTransport) -> Iterator[AsyncTransport]:
    """Send everything through ``transport`` inside the block, from every thread (the sync
    API's loop thread included); the previous transport is back afterwards."""
    global _transport
    previous, _transport = _transport, transport
    try:
        yield transport
    finally:
        _transport = previous


async def send(request: HttpRequest, timeouts: Timeouts) -> Response:
    """The whole answer, within ``timeouts.total`` from the start of the call."""
    resp: TransportResponse | None = None
    try:
        async with asyncio.timeout(timeouts.total):
            resp = await _transport.handle(request, timeouts)
            body = await resp.read()
    except BaseException as exc:
        if resp is not None:
            resp.close()
        if isinstance(exc, TimeoutError):
            raise connection_error(exc, request) from exc
        raise
    resp.release()
    return Response(resp.status, resp.headers, body)


async def open_response(request: HttpRequest, timeouts: Timeouts) -> TransportResponse:
    """Send and return as soon as the status and headers are in, within ``timeouts.total``;
    the caller reads the body (``iter_chunks`` / ``read``) and must ``close()`` (abort) or
    ``release()`` (reuse) it."""
    try:
        async with asyncio.timeout(timeouts.total):
            return await _transport.handle(request, timeouts)
    except TimeoutError as exc:
        raise connection_error(exc, request) from exc


async def aclose() -> None:
    """Close this loop's pooled connections (optional: they are closed at loop shutdown)."""
    await _transport.aclose()
