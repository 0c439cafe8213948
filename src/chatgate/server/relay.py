"""Relay a ChatStream to an HTTP client as SSE, in whichever wire format the route speaks; and
``ClientWatch``, which notices a client that goes away, for streams and whole answers alike.

Chunks are forwarded as they arrive (no buffering); a client that goes away cancels the
upstream request at once; an upstream failure mid-stream becomes an error event in the route's
wire format, then the stream closes — never a silent short answer. How it ended (``Relayed``)
is serving's to record in the request's context.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from chatgate.server.asgi import (
    DISCONNECT_HOOK,
    ClientDisconnected,
    DisconnectHook,
    Receive,
    Scope,
)
from chatgate.server.request import GatewayRequest, stream_failed
from chatgate.stream import ChatStream
from chatgate.wire_chunk import StreamItem

__all__ = ["ClientWatch", "Frames", "Relayed", "relay"]

T = TypeVar("T")


def _nothing() -> None:
    pass


class ClientWatch:
    """Knows when the client is gone and then runs ``on_gone``: cancel the call while an answer
    is awaited (``cancelling``), close the upstream stream while one is relayed. ``stop()`` it
    when the answer is over. Under ``chatgate serve`` the server's protocol tells it
    (DisconnectHook: no task per request); under another server, a side task waits for the
    ``http.disconnect`` that ASGI reports once the connection closes."""

    __slots__ = ("_hook", "_task")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        hook = scope.get(DISCONNECT_HOOK)
        self._task: asyncio.Future[None] | None = None
        if hook is None:
            hook = DisconnectHook()
            self._task = asyncio.ensure_future(_watch(receive, hook))
        self._hook: DisconnectHook = hook

    @property
    def gone(self) -> bool:
        return self._hook.gone

    @property
    def on_gone(self) -> Callable[[], object]:
        return self._hook.callback

    @on_gone.setter
    def on_gone(self, callback: Callable[[], object]) -> None:
        self._hook.callback = callback

    async def cancelling(self, call: Awaitable[T]) -> T:
        """Await ``call``; if the client goes meanwhile, cancel it (closing its upstream
        connection) and raise ClientDisconnected. Other cancellations pass through."""
        task = asyncio.current_task()
        assert task is not None
        self._hook.callback = task.cancel
        try:
            return await call
        except asyncio.CancelledError:
            if self._hook.gone and task.uncancel() == 0:
                raise ClientDisconnected from None
            raise
        finally:
            self._hook.callback = _nothing

    def stop(self) -> None:
        self._hook.callback = _nothing
        if self._task is not None:
            self._task.cancel()


async def _watch(receive: Receive, hook: DisconnectHook) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    hook.fire()


class Frames(Protocol):
    """How one wire format writes a stream: each chunk, the normal end, a failure. A chunk
    comes as the stream's source gave it (typed, or a WireChunk: see ChatStream.wire_batches);
    ``typed_chunk`` turns either into a ChatChunk when the frames need one."""

    def chunk(self, item: StreamItem) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, exc: BaseException) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Relayed:
    """How a relay ended: the stream ``complete``, the client ``gone`` before that, and the
    time to the first chunk the client was sent (None: no chunk was)."""

    complete: bool
    gone: bool
    ttft_ms: float | None


async def relay(
    chat_stream: ChatStream, watch: ClientWatch, request: GatewayRequest, frames: Frames
) -> Relayed:
    watch.on_gone = chat_stream.close  # the read below ends at once
    if watch.gone:
        chat_stream.close()
    complete = False
    ttft_ms: float | None = None
    started = request.ctx.started
    held = b""  # the last batch, when the end follows without waiting: one write for both
    try:
        await request.start_stream()
        send = request.send  # after the head: see GatewayRequest.start_stream
        try:
            async for batch in chat_stream.wire_batches():  # one write per network read
                if ttft_ms is None and chat_stream.ttft_ms is not None:
                    ttft_ms = (time.perf_counter() - started) * 1000.0
                data = b"".join([frames.chunk(item) for item in batch])
                if chat_stream.drained:
                    held += data
                elif data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            tail = held + frames.end()
            complete = True
        except Exception as exc:  # the response has begun: an error event is the only way left
            stream_failed(request.ctx, exc)
            tail = held + frames.error(exc)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        watch.on_gone = _nothing
        if not complete:
            chat_stream.close()
    return Relayed(complete, watch.gone and not complete, ttft_ms)
