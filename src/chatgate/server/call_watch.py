"""A whole answer's call cancelled when its client goes, with no coroutine around the call:
the watch (server/relay.py ClientWatch) cancels the request's task itself, and the call's end
tells a cancellation for the client apart from any other. A coroutine layer here would be one
more frame for every resume of the call (each read of the upstream's answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from chatgate.server.asgi import _nothing
from chatgate.server.relay import ClientWatch

__all__ = ["cancel_when_gone", "stop_watching"]


def cancel_when_gone(watch: ClientWatch | None) -> asyncio.Task[Any] | None:
    """The current task, which ``watch`` cancels if the client goes (None: no watch)."""
    if watch is None:
        return None
    task = asyncio.current_task()
    assert task is not None
    watch.on_gone = task.cancel
    return task


def stop_watching(
    watch: ClientWatch | None, task: asyncio.Task[Any] | None, exc: BaseException | None
) -> bool:
    """The call is over; whether ``exc`` is the watch's cancellation (then taken back: the
    caller raises ClientDisconnected instead). Other cancellations pass through."""
    if watch is None or task is None:
        return False
    watch.on_gone = _nothing
    return isinstance(exc, asyncio.CancelledError) and watch.gone and task.uncancel() == 0
