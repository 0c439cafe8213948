"""A ChunkSource over a live ChatStream, and the meta a relayed answer inherits from it.

The cache layer hands callers its own ChatStream (for their sync/async mode and truncation
setting) even when it does not cache: the live stream's chunks pass straight through.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from chatgate.providers.base import Deployment
from chatgate.stream import ChatStream
from chatgate.types import ChatChunk, ChatResponse, ResponseMeta

__all__ = ["LiveSource", "finish_meta"]


class LiveSource:
    def __init__(self, live: ChatStream) -> None:
        self._live = live
        self.provider = ""  # filled from the live answer's meta when it completes
        self.model = ""
        self.request_id = live.request_id
        self.deployment: Deployment | None = None  # the live stream inside prices the answer

    async def chunks(self) -> AsyncGenerator[ChatChunk, None]:
        async for chunk in self._live:
            yield chunk

    def end(self, complete: bool) -> None:
        if not complete:
            self._live.close()

    def abort(self) -> None:
        self._live.close()


def finish_meta(meta: ResponseMeta, made: ChatStream | ChatResponse) -> None:
    """Copy what the live call knew (who answered, its request id, attempts, cost) onto the
    meta of the answer a caller receives; timings stay the caller's own."""
    source = (made.final() if isinstance(made, ChatStream) else made).meta
    meta.provider = source.provider
    meta.model = source.model
    meta.request_id = source.request_id
    meta.deployment = source.deployment
    meta.model_name = source.model_name
    meta.attempts = source.attempts
    meta.attempt_log = list(source.attempt_log)
    meta.cost = source.cost
