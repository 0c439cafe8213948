"""WireChunk: a stream chunk as an OpenAI-format upstream sent it, the JSON text and its
parsed data, before (and often instead of) a typed ``ChatChunk``.

Validating a chunk into a ChatChunk costs about 1.8 µs, five times the JSON parse. A gateway
relaying an OpenAI-format upstream to an OpenAI-format client needs neither: it forwards the
bytes, and the stream's fold reads a few fields of the data. So the OpenAI translator yields
WireChunks, ``StreamAccumulator.add_wire`` folds them from the data, and the typed ChatChunk is
built (once) only for a caller that iterates typed chunks.
"""

from __future__ import annotations

from typing import Any

import pydantic

from chatgate.errors import APIConnectionError
from chatgate.types import ChatChunk

__all__ = ["StreamItem", "WireChunk", "typed_chunk"]

# model_validate_json without its wrapper
_VALIDATE_CHUNK = ChatChunk.__pydantic_validator__.validate_json


class WireChunk:
    """One chunk as it came: ``wire_json`` the exact bytes, ``data`` the parsed JSON object."""

    __slots__ = ("_typed", "data", "wire_json")

    def __init__(self, wire_json: bytes, data: dict[str, Any]) -> None:
        self.wire_json = wire_json
        self.data = data
        self._typed: ChatChunk | None = None

    def chunk(self) -> ChatChunk:
        """The typed chunk (validated once, then kept); a chunk that is not a chat completion
        chunk raises APIConnectionError, as a broken stream does."""
        if self._typed is None:
            try:
                typed: ChatChunk = _VALIDATE_CHUNK(self.wire_json)
            except pydantic.ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error["loc"])
                raise APIConnectionError(
                    f"malformed stream chunk: {where}: {error['msg']}"
                ) from exc
            typed.keep_wire_json(self.wire_json)
            self._typed = typed
        return self._typed

    def __repr__(self) -> str:
        return f"WireChunk({self.wire_json!r})"


StreamItem = ChatChunk | WireChunk
"""What a stream source yields: typed chunks (most providers, replays) or wire chunks."""


def typed_chunk(item: StreamItem) -> ChatChunk:
    return item.chunk() if isinstance(item, WireChunk) else item
