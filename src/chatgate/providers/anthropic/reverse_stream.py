"""Canonical chunks -> Anthropic stream events, for the gateway's streaming /v1/messages.

A stateful, I/O-free translator: ``feed(chunk)`` returns the events that chunk completes,
``finish()`` closes the open block and sends ``message_delta`` (stop reason, usage) and
``message_stop``. ``encode`` writes events as SSE bytes. Anthropic blocks are sequential, so a
new kind of content (text, thinking, another tool call) closes the block before it.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.providers.anthropic.messages import THINKING_BLOCKS
from chatgate.providers.anthropic.reverse import STOP_REASONS, anthropic_id, anthropic_usage
from chatgate.types import ChatChunk, Delta, Usage

__all__ = ["ChunksToAnthropicEvents", "Event", "encode"]

Event = tuple[str, dict[str, Any]]  # (event name, data)


def encode(events: list[Event]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    )


class ChunksToAnthropicEvents:
    __slots__ = ("_block", "_index", "_kind", "_model", "_reason", "_started", "_usage")

    def __init__(self, model: str = "") -> None:
        self._model = model
        self._started = False
        self._index = -1  # the current (last opened) content block
        self._kind: str | None = None  # "text" | "thinking" | "tool_use" | None when closed
        self._block: dict[int, int] = {}  # OpenAI tool-call index -> content block index
        self._reason: str | None = None
        self._usage: Usage | None = None

    def feed(self, chunk: ChatChunk) -> list[Event]:
        events: list[Event] = []
        if not self._started:
            events.append(self._message_start(chunk))
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # Anthropic has one answer per message
            events += self._delta(choice.delta)
            if choice.finish_reason is not None:
                self._reason = choice.finish_reason
        return events

    def finish(self) -> list[Event]:
        events = [] if self._started else [self._message_start(ChatChunk())]
        events += self._close()
        reason = STOP_REASONS.get(self._reason or "stop", "end_turn")
        delta = {"stop_reason": reason, "stop_sequence": None}
        events.append(
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": self._out()})
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _out(self) -> dict[str, Any]:
        return anthropic_usage(self._usage)

    def _message_start(self, chunk: ChatChunk) -> Event:
        self._started = True
        message: dict[str, Any] = {
            "id": anthropic_id(chunk.id, "msg_"),
            "type": "message",
            "role": "assistant",
            "model": chunk.model or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return ("message_start", {"type": "message_start", "message": message})

    def _close(self) -> list[Event]:
        if self._kind is None:
            return []
        self._kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _open(self, block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self._index += 1
        self._kind = block["type"]
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        events.append(("content_block_start", start))
        return events

    def _emit(self, index: int, delta: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )

    def _delta(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning_content:
            if self._kind != "thinking":
                events += self._open({"type": "thinking", "thinking": "", "signature": ""})
            text = delta.reasoning_content
            events.append(self._emit(self._index, {"type": "thinking_delta", "thinking": text}))
        for block in (delta.model_extra or {}).get(THINKING_BLOCKS) or ():
            events += self._thinking_block(block)
        if delta.content:
            if self._kind != "text":
                events += self._open({"type": "text", "text": ""})
            events.append(self._emit(self._index, {"type": "text_delta", "text": delta.content}))
        for call in delta.tool_calls or ():
            if call.index not in self._block:
                name = call.function.name if call.function else None
                tool_id = anthropic_id(call.id, "toolu_")
                block = {"type": "tool_use", "id": tool_id, "name": name or "", "input": {}}
                events += self._open(block)
                self._block[call.index] = self._index
            arguments = call.function.arguments if call.function else None
            if arguments:
                fragment = {"type": "input_json_delta", "partial_json": arguments}
                events.append(self._emit(self._block[call.index], fragment))
        return events

    def _thinking_block(self, block: dict[str, Any]) -> list[Event]:
        """A whole thinking block from an Anthropic upstream: its signature, or a redacted one."""
        if block.get("type") == "redacted_thinking":
            return [*self._open(dict(block)), *self._close()]
        signature = block.get("signature")
        if self._kind != "thinking" or not signature:
            return []
        return [self._emit(self._index, {"type": "signature_delta", "signature": signature})]
