"""Relay a ChatStream to an HTTP client as SSE, in whichever wire format the route speaks.

Chunks are forwarded as they arrive (no buffering); a client that goes away cancels the
upstream request at once; an upstream failure mid-stream becomes an error event, then the
stream closes — never a silent short answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from chatgate.errors import ChatgateError
from chatgate.server.asgi import Receive, Send, start_stream
from chatgate.stream import ChatStream
from chatgate.types import ChatChunk

__all__ = ["Frames", "relay"]


class Frames(Protocol):
    """How one wire format writes a stream: each chunk, the normal end, a failure."""

    def chunk(self, chunk: ChatChunk) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, exc: ChatgateError) -> bytes: ...


async def relay(
    chat_stream: ChatStream,
    receive: Receive,
    send: Send,
    headers: list[tuple[str, str]],
    frames: Frames,
) -> None:
    async def pump() -> None:
        await start_stream(send, headers)
        try:
            async for chunk in chat_stream:
                data = frames.chunk(chunk)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            tail = frames.end()
        except ChatgateError as exc:
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
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task
