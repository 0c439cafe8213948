"""The Responses API's stream events as the tests read them: a stream of chat chunks run
through ``ChunksToResponseEvents``, every event checked against the openai SDK's type."""

from __future__ import annotations

from typing import Any

from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from chatgate.responses_api import ChunksToResponseEvents
from chatgate.types import ChatChunk

__all__ = ["EVENTS", "run_stream"]

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def run_stream(events: ChunksToResponseEvents, chunks: list[dict[str, Any]]) -> list[Any]:
    """Every event ``events`` makes of ``chunks`` (each a chunk's fields but its id and
    model) and of the stream's end, each a valid ``ResponseStreamEvent``."""
    out: list[Any] = []
    for chunk in chunks:
        out += events.feed(ChatChunk.model_validate({"id": "x", "model": "m", **chunk}))
    out += events.finish()
    for event in out:
        EVENTS.validate_python(event)
    return out
