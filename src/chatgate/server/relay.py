"""Relay a ChatStream to an HTTP client as SSE, in whichever wire format the route speaks.

Chunks are forwarded as they arrive (no buffering); a client that goes away cancels the
upstream request at once; an upstream failure mid-stream becomes an error event in the route's
wire format, then the stream closes — never a silent short answer. What happened (first-chunk
time, usage, outcome) is written into the request's context for metrics and the access log.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from chatgate.server.asgi import Receive, Send, start_stream
from chatgate.server.context import RequestContext
from chatgate.stream import ChatStream
from chatgate.wire_chunk import StreamItem

__all__ = ["ClientDisconnected", "Frames", "relay"]


class ClientDisconnected(Exception):
    """The client went away before the end of the stream (recorded as status 499)."""


class Frames(Protocol):
    """How one wire format writes a stream: each chunk, the normal end, a failure. A chunk
    comes as the stream's source gave it (typed, or a WireChunk: see ChatStream.wire_batches);
    ``typed_chunk`` turns either into a ChatChunk when the frames need one."""

    def chunk(self, item: StreamItem) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, exc: BaseException) -> bytes: ...


async def relay(
    chat_stream: ChatStream,
    receive: Receive,
    send: Send,
    ctx: RequestContext,
    frames: Frames,
) -> None:
    gone = False

    async def watch_client() -> None:
        """On disconnect, close the upstream stream: the read below ends at once."""
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        chat_stream.close()

    watcher = asyncio.ensure_future(watch_client())
    complete = False
    held = b""  # the last batch, when the end follows without waiting: one write for both
    try:
        await start_stream(send, ctx.headers())
        ctx.status = 200
        try:
            async for batch in chat_stream.wire_batches():  # one write per network read
                if ctx.ttft_ms is None and chat_stream.ttft_ms is not None:
                    ctx.ttft_ms = (time.perf_counter() - ctx.started) * 1000.0
                data = b"".join([frames.chunk(item) for item in batch])
                if chat_stream.drained:
                    held += data
                elif data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            tail = held + frames.end()
            complete = True
        except Exception as exc:  # the response has begun: an error event is the only way left
            ctx.error_class = type(exc).__name__
            tail = held + frames.error(exc)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        watcher.cancel()
        if not complete:
            chat_stream.close()
    if gone and not complete:
        ctx.fail(ClientDisconnected(), 499)
    elif complete:
        ctx.take_response(chat_stream.final())
    else:
        ctx.usage = chat_stream.usage  # what was produced before the failure, if the upstream said
