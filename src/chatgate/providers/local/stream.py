"""Streams from the local server, with the usage chunk OpenAI sends and llama.cpp does not.

Our managed server (``child.py``) appends a usage chunk counted with the model's tokenizer. If
it is missing (an older child, a server we did not start), one is synthesized at the end: each
content or tool-argument delta is one token (measured equal to the non-streamed
``completion_tokens`` on text, JSON-mode and tool-call answers); the prompt count is then
unknown and reported as 0.
"""

from __future__ import annotations

from chatgate.providers.base import Deployment
from chatgate.providers.openai import OpenAIStreamTranslator
from chatgate.transport.sse import SSEEvent
from chatgate.types import ChatChunk, Usage
from chatgate.wire_chunk import StreamItem, WireChunk

__all__ = ["LocalStreamTranslator", "count_tokens"]


def count_tokens(chunk: ChatChunk) -> int:
    """Tokens in one chunk as llama.cpp streams them: one per content or argument delta."""
    count = 0
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content:
            count += 1
        for call in delta.tool_calls or ():
            if call.function is not None and call.function.arguments:
                count += 1
    return count


class LocalStreamTranslator:
    __slots__ = ("_completion_tokens", "_inner", "_last", "_usage_seen")

    def __init__(self, deployment: Deployment) -> None:
        self._inner = OpenAIStreamTranslator(deployment)
        self._completion_tokens = 0
        self._usage_seen = False
        self._last: ChatChunk | None = None

    def feed(self, event: SSEEvent) -> list[WireChunk]:
        items = self._inner.feed(event)
        for item in items:  # typed here (kept by the WireChunk): this is not a hot path
            chunk = item.chunk()
            self._completion_tokens += count_tokens(chunk)
            self._usage_seen = self._usage_seen or chunk.usage is not None
            self._last = chunk
        return items

    def finish(self) -> list[StreamItem]:
        tail: list[StreamItem] = [*self._inner.finish()]
        if self._usage_seen or self._last is None:
            return tail
        usage = Usage(
            prompt_tokens=0,
            completion_tokens=self._completion_tokens,
            total_tokens=self._completion_tokens,
        )
        last = self._last
        synthesized = ChatChunk(
            id=last.id, created=last.created, model=last.model, choices=[], usage=usage
        )
        return [*tail, synthesized]
