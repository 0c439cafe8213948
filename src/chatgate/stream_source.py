"""Where a ChatStream's chunks come from: the ``ChunkSource`` protocol, and
``HttpChunkSource``, a live upstream response turned into canonical chunks. A cache replay is
another source; a ChatStream cannot tell them apart (chatgate.stream)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Protocol

from chatgate.errors import ChatgateError
from chatgate.wire_chunk import StreamItem

if TYPE_CHECKING:
    from chatgate.providers.base import Deployment, EventFramer, StreamTranslator
    from chatgate.transport.base import TransportResponse

__all__ = ["ChunkSource", "HttpChunkSource"]


class ChunkSource(Protocol):
    """Where a ChatStream's chunks come from, in batches as they arrive (what one network read
    brought). ``batches()`` is iterated at most once; ``end``
    is called once when that iteration stops (``complete`` False: left early, cancelled or
    failed); ``abort`` may come at any time, before or during iteration, and must be safe to
    call more than once. ``drained`` says that nothing more will come from the network: what
    is left of ``batches()`` ends without waiting (a relay then writes the end with the last
    batch, one write instead of two)."""

    provider: str
    model: str
    request_id: str | None
    deployment: Deployment | None  # prices the answer; None: someone else accounts for it

    @property
    def drained(self) -> bool: ...

    def batches(self) -> AsyncGenerator[Sequence[StreamItem], None]: ...

    def end(self, complete: bool) -> None: ...

    def abort(self) -> None: ...


class HttpChunkSource:
    """A live upstream response: bytes -> events (framer) -> canonical chunks (translator)."""

    def __init__(
        self,
        response: TransportResponse,
        framer: EventFramer,
        translator: StreamTranslator,
        deployment: Deployment,
        request_id_headers: tuple[str, ...],
    ) -> None:
        self._resp = response
        self._framer = framer
        self._translator = translator
        self.provider = deployment.provider
        self.model = deployment.model
        self.deployment: Deployment | None = deployment
        self.request_id = next(
            (response.headers[h] for h in request_id_headers if h in response.headers),
            None,
        )

    @property
    def drained(self) -> bool:
        return self._resp.at_eof

    async def batches(self) -> AsyncGenerator[list[StreamItem], None]:
        async for data in self._resp.iter_chunks():
            batch: list[StreamItem] = []
            try:
                for event in self._framer.feed(data):
                    batch += self._translator.feed(event)
            except ChatgateError:
                if batch:  # what came before the failure still reaches the caller
                    yield batch
                raise
            if batch:
                yield batch
        tail = [c for e in self._framer.flush() for c in self._translator.feed(e)]
        batch = [*tail, *self._translator.finish()]
        if batch:
            yield batch

    def end(self, complete: bool) -> None:
        if complete:
            self._resp.release()
        else:  # left early, cancelled or failed: drop the connection, never reuse it
            self._resp.close()

    def abort(self) -> None:
        self._resp.close()
