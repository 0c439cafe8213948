"""The stream of a conversation's reply: the exchange is kept when the stream completes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from chatgate.stream import ChatStream
from chatgate.transport.loop_thread import run_sync
from chatgate.types import ChatChunk, ChatResponse

__all__ = ["ConversationStream"]


class ConversationStream:
    """The chunks of a conversation's reply, for ``for`` and ``async for``. The exchange is
    added to the conversation (and saved) when the stream ends; left early, it is not."""

    def __init__(
        self, inner: ChatStream, done: Callable[[ChatResponse | None], Coroutine[Any, Any, None]]
    ) -> None:
        self._inner = inner
        self._done = done
        self._finished = False

    def __iter__(self) -> Iterator[ChatChunk]:
        complete = False
        try:
            yield from self._inner
            complete = True
        finally:
            self._finished = True
            run_sync(self._done(self._inner.final() if complete else None))

    async def __aiter__(self) -> AsyncIterator[ChatChunk]:
        complete = False
        try:
            async for chunk in self._inner:
                yield chunk
            complete = True
        finally:
            self._finished = True
            await self._done(await self._inner.afinal() if complete else None)

    def close(self) -> None:
        """Abandon the reply: the exchange is not kept, the conversation can send again."""
        if not self._finished:
            self._finished = True
            self._inner.close()
            run_sync(self._done(None))

    async def aclose(self) -> None:
        if not self._finished:
            self._finished = True
            self._inner.close()
            await self._done(None)

    def final(self) -> ChatResponse:
        if not self._finished:
            for _ in self:
                pass
        return self._inner.final()

    async def afinal(self) -> ChatResponse:
        if not self._finished:
            async for _ in self:
                pass
        return await self._inner.afinal()
