"""Relay a ChatStream to an HTTP client as SSE, in whichever wire format the route speaks.

Chunks are forwarded as they arrive (no buffering); a client that goes away cancels the
upstream request at once; an upstream failure mid-stream becomes an error event in the route's
wire format, then the stream closes — never a silent short answer. What happened (first-chunk
time, usage, outcome) is written into the request's context for metrics and the access log.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from chatgate.server.asgi import Receive, Send, start_stream
from chatgate.server.context import RequestContext
from chatgate.stream import ChatStream
from chatgate.types import ChatChunk

__all__ = ["ClientDisconnected", "Frames", "relay"]


class ClientDisconnected(Exception):
    """The client went away before the end of the stream (recorded as status 499)."""


class Frames(Protocol):
    """How one wire format writes a stream: each chunk, the normal end, a failure."""

    def chunk(self, chunk: ChatChunk) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, exc: BaseException) -> bytes: ...


async def relay(
    chat_stream: ChatStream,
    receive: Receive,
    send: Send,
    ctx: RequestContext,
    frames: Frames,
) -> None:
    complete = False

    async def pump() -> None:
        nonlocal complete
        await start_stream(send, ctx.headers())
        ctx.status = 200
        try:
            async for batch in chat_stream.batches():  # one write per network read
                if ctx.ttft_ms is None and any(chunk.choices for chunk in batch):
                    ctx.ttft_ms = (time.perf_counter() - ctx.started) * 1000.0
                data = b"".join([frames.chunk(chunk) for chunk in batch])
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            tail = frames.end()
            complete = True
        except Exception as exc:  # the response has begun: an error event is the only way left
            ctx.error_class = type(exc).__name__
            tail = frames.error(exc)
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pump_task = asyncio.ensure_future(pump())
    gone_task = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({pump_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone_task.cancel()
        if not pump_task.done():
            pump_task.cancel()
            chat_stream.close()
            ctx.fail(ClientDisconnected(), 499)
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task
    if complete:
        ctx.take_response(chat_stream.final())
    else:
        ctx.usage = chat_stream.usage  # what was produced before the end, if the upstream said
