"""What every fake upstream shares: a real aiohttp server on 127.0.0.1 running on its own thread
and event loop (so sync tests, async tests and other processes all reach it over a socket),
the record of what it received, a queue of scripted replies, and one writer for whole bodies
and paced streams that counts the clients that went away mid-stream.

A provider's fake subclasses ``LoopbackServer`` and keeps only its wire format: its routes
(``_handle``), how a stream event is encoded (``encode_event``), the stream's content type,
terminator and request-id header.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
from aiohttp import web

__all__ = ["LoopbackServer", "Received", "Reply", "read_body"]


@dataclass
class Reply:
    """One scripted answer. ``json`` for a whole body; ``chunks`` for a stream (dicts encoded by
    the fake's ``encode_event``, strings and bytes sent as they are); ``drop_after`` cuts the
    connection after that many chunks; ``delay_s`` holds back the status line (slow first
    byte); ``chunk_delay_s`` paces the stream; ``split`` writes each chunk in pieces of that
    many bytes; ``done`` sends the fake's stream terminator, where it has one."""

    status: int = 200
    json: Any = None
    chunks: list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    drop_after: int | None = None
    done: bool = True
    raw: bytes | None = None
    split: int | None = None


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


async def read_body(request: web.Request) -> tuple[bytes, Any]:
    """The raw body and its JSON (or its text when it is not JSON, None when empty)."""
    raw = await request.read()
    try:
        return raw, orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return raw, raw.decode("utf-8", "replace")


R = TypeVar("R")
S = TypeVar("S", bound="LoopbackServer[Any, Any]")
Q = TypeVar("Q", bound=Reply)


class LoopbackServer(Generic[Q, R]):
    """Start with ``with Fake() as fake:``; subclasses define ``_handle`` and ``base_url``."""

    stream_content_type = "text/event-stream"
    done_marker: bytes | None = None  # sent after the last chunk when ``Reply.done``
    request_id_header: str | None = None
    request_id_prefix = "req_fake_"

    def __init__(self) -> None:
        self.requests: list[R] = []
        self.replies: deque[Q] = deque()
        self.disconnects = 0  # streams whose client went away before the end
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- scripting ----------------------------------------------------------------------------

    def script(self: S, *replies: Any) -> S:
        self.replies.extend(replies)
        return self

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Where clients point (the provider's API root); subclasses add their version path."""
        return self.root_url

    @property
    def last(self) -> R:
        return self.requests[-1]

    def wait_for_disconnect(self, count: int = 1, timeout_s: float = 2.0) -> bool:
        """Poll until ``count`` streams lost their client (True) or the time is up (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.disconnects >= count:
                return True
            time.sleep(0.01)
        return False

    def request_headers(self, reply: Reply) -> dict[str, str]:
        """The reply's headers, after this fake's request-id header when it sends one."""
        if self.request_id_header is None:
            return dict(reply.headers)
        own = {self.request_id_header: f"{self.request_id_prefix}{len(self.requests)}"}
        return {**own, **reply.headers}

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self: S) -> S:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- serving ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def encode_event(self, event: Any) -> bytes:
        """One stream event on the wire; SSE ``data: {json}`` unless the provider differs."""
        return b"data: " + orjson.dumps(event) + b"\n\n"

    async def _respond(
        self, request: web.Request, reply: Reply, headers: dict[str, str]
    ) -> web.StreamResponse:
        """Send a scripted reply: after its delay, raw bytes, a JSON body, or a stream."""
        if reply.delay_s:
            try:
                await asyncio.sleep(reply.delay_s)
            except asyncio.CancelledError:  # the client closed the connection while we waited
                self.disconnects += 1
                raise
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=headers)
        if reply.chunks is None:
            return web.Response(
                status=reply.status,
                body=orjson.dumps(reply.json),
                headers=headers,
                content_type="application/json",
            )
        return await self._stream(request, reply, headers)

    async def _stream(
        self, request: web.Request, reply: Reply, headers: dict[str, str]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=reply.status, headers=headers)
        resp.content_type = self.stream_content_type
        await resp.prepare(request)
        try:
            for n, chunk in enumerate(reply.chunks or []):
                if reply.drop_after is not None and n >= reply.drop_after:
                    assert request.transport is not None
                    request.transport.close()  # the connection dies mid-answer
                    return resp
                data = self._encode(chunk)
                step = reply.split or len(data) or 1
                for at in range(0, len(data), step):
                    await resp.write(data[at : at + step])
                if reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
            if reply.done and self.done_marker is not None:
                await resp.write(self.done_marker)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return resp

    def _encode(self, chunk: Any) -> bytes:
        if isinstance(chunk, bytes):
            return chunk
        if isinstance(chunk, str):
            return chunk.encode()
        return self.encode_event(chunk)
