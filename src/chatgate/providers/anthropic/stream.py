"""Anthropic stream events -> canonical chunks, I/O-free.

Anthropic numbers content blocks (text, thinking and tool_use together); OpenAI numbers tool
calls alone, so each tool_use block gets the next tool-call index. A stream is complete only
at ``message_stop``; usage arrives in ``message_start`` and (cumulatively) in ``message_delta``
and is sent as the final ``choices=[]`` chunk.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.errors import APIConnectionError
from chatgate.providers.anthropic.errors import error_from_payload
from chatgate.providers.anthropic.messages import THINKING_BLOCKS
from chatgate.providers.anthropic.response import finish_reason, usage_from
from chatgate.providers.base import Deployment
from chatgate.transport.sse import SSEEvent
from chatgate.types import (
    ChatChunk,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
)

__all__ = ["AnthropicStreamTranslator"]

_JSON_BLOCK = -1  # block index marker: the forced json_schema tool, streamed as content


class AnthropicStreamTranslator:
    __slots__ = (
        "_blocks",
        "_deployment",
        "_done",
        "_id",
        "_json_tool",
        "_model",
        "_thinking",
        "_tools",
        "_usage",
    )

    def __init__(self, deployment: Deployment, json_tool: str | None = None) -> None:
        self._deployment = deployment
        self._json_tool = json_tool
        self._id = ""
        self._model = ""
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, int] = {}  # content block index -> tool-call index
        self._thinking: dict[int, dict[str, Any]] = {}  # content block index -> thinking block
        self._tools = 0
        self._done = False

    def _chunk(self, delta: Delta, finish: str | None = None) -> ChatChunk:
        choice = ChunkChoice(delta=delta, finish_reason=finish)
        return ChatChunk(id=self._id, model=self._model, choices=[choice])

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        if self._done or not event.data:
            return []
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError as exc:
            raise APIConnectionError(
                f"malformed stream event {event.event!r}: {exc}",
                provider=self._deployment.provider,
                model=self._deployment.model,
            ) from exc
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "error":
            raise error_from_payload(data, self._deployment)
        handler = _HANDLERS.get(kind or "")
        return handler(self, data) if handler is not None else []  # ping and future events

    def finish(self) -> list[ChatChunk]:
        if not self._done:
            raise APIConnectionError(
                "the stream ended before the answer was complete (no message_stop)",
                provider=self._deployment.provider,
                model=self._deployment.model,
            )
        return []

    # --- one method per event type ---------------------------------------------------------

    def _message_start(self, data: dict[str, Any]) -> list[ChatChunk]:
        message = data.get("message") or {}
        self._id = message.get("id", "")
        self._model = message.get("model", "")
        self._usage = dict(message.get("usage") or {})
        return [self._chunk(Delta(role="assistant", content=""))]

    def _block_start(self, data: dict[str, Any]) -> list[ChatChunk]:
        index, block = data.get("index", 0), data.get("content_block") or {}
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [self._chunk(Delta(content=block["text"]))]
        if kind in ("thinking", "redacted_thinking"):
            self._thinking[index] = dict(block)
            if block.get("thinking"):
                return [self._chunk(Delta(reasoning_content=block["thinking"]))]
            return []
        if kind != "tool_use":
            return []
        if self._json_tool is not None and block.get("name") == self._json_tool:
            self._blocks[index] = _JSON_BLOCK
            return []
        self._blocks[index] = ordinal = self._tools
        self._tools += 1
        call = ToolCallDelta(
            index=ordinal,
            id=block.get("id"),
            type="function",
            function=FunctionCallDelta(name=block.get("name"), arguments=""),
        )
        return [self._chunk(Delta(tool_calls=[call]))]

    def _block_delta(self, data: dict[str, Any]) -> list[ChatChunk]:
        index, delta = data.get("index", 0), data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk(Delta(content=delta.get("text", "")))]
        if kind == "thinking_delta":
            text = delta.get("thinking", "")
            if index in self._thinking:
                self._thinking[index]["thinking"] = self._thinking[index].get("thinking", "") + text
            return [self._chunk(Delta(reasoning_content=text))]
        if kind == "signature_delta" and index in self._thinking:
            self._thinking[index]["signature"] = delta.get("signature", "")
            return []
        if kind == "input_json_delta" and delta.get("partial_json"):
            ordinal = self._blocks.get(index)
            if ordinal == _JSON_BLOCK:
                return [self._chunk(Delta(content=delta["partial_json"]))]
            if ordinal is not None:
                fragment = FunctionCallDelta(arguments=delta["partial_json"])
                call = ToolCallDelta(index=ordinal, function=fragment)
                return [self._chunk(Delta(tool_calls=[call]))]
        return []  # citations_delta and deltas of blocks we do not translate

    def _block_stop(self, data: dict[str, Any]) -> list[ChatChunk]:
        block = self._thinking.pop(data.get("index", 0), None)
        if block is None:
            return []
        # The whole block with its signature, so the caller can send the turn back.
        return [self._chunk(Delta(**{THINKING_BLOCKS: [block]}))]

    def _message_delta(self, data: dict[str, Any]) -> list[ChatChunk]:
        usage = data.get("usage") or {}
        self._usage.update({k: v for k, v in usage.items() if v is not None})
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        if stop_reason is None:
            return []
        reason = finish_reason(stop_reason, self._json_tool is not None)
        return [self._chunk(Delta(), reason)]

    def _message_stop(self, data: dict[str, Any]) -> list[ChatChunk]:
        self._done = True
        return [ChatChunk(id=self._id, model=self._model, usage=usage_from(self._usage))]


_HANDLERS = {
    "message_start": AnthropicStreamTranslator._message_start,
    "content_block_start": AnthropicStreamTranslator._block_start,
    "content_block_delta": AnthropicStreamTranslator._block_delta,
    "content_block_stop": AnthropicStreamTranslator._block_stop,
    "message_delta": AnthropicStreamTranslator._message_delta,
    "message_stop": AnthropicStreamTranslator._message_stop,
}
