"""ConverseStream: AWS event-stream frames -> events -> canonical chunks.

``EventStreamFramer`` wraps botocore's ``EventStreamBuffer`` (prelude, headers, payload and
both CRCs checked) in chatgate's framer protocol. ``BedrockStreamTranslator`` is I/O-free:
messageStart -> the role chunk; contentBlockStart(toolUse) -> a tool call's first fragment
(index, id, name); contentBlockDelta -> content / arguments / reasoning fragments;
messageStop -> finish_reason; metadata -> the usage chunk (``choices=[]``); an exception
event -> the mapped error, raised. A stream without messageStop ended incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from chatgate.errors import APIConnectionError
from chatgate.providers.base import Deployment
from chatgate.providers.bedrock.errors import error_from_event
from chatgate.providers.bedrock.response import finish_reason, new_id, usage_from
from chatgate.types import (
    ChatChunk,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
    Usage,
)

__all__ = ["AwsEvent", "BedrockStreamTranslator", "EventStreamFramer"]


@dataclass(frozen=True, slots=True)
class AwsEvent:
    """One event-stream message: ``message_type`` is event / exception / error, ``name`` the
    :event-type, :exception-type or :error-code header."""

    message_type: str
    name: str
    payload: bytes
    error_message: str | None = None


class EventStreamFramer:
    __slots__ = ("_buffer", "_deployment")

    def __init__(self, deployment: Deployment) -> None:
        self._buffer = EventStreamBuffer()
        self._deployment = deployment

    def feed(self, chunk: bytes) -> list[AwsEvent]:
        self._buffer.add_data(chunk)
        events: list[AwsEvent] = []
        try:
            for message in self._buffer:
                # botocore-stubs wrongly type headers as int; it is a dict of header values.
                headers = cast(dict[str, Any], message.headers)
                kind = str(headers.get(":message-type", "event"))
                name = headers.get(":event-type") or headers.get(":exception-type")
                name = name or headers.get(":error-code") or ""
                text = headers.get(":error-message")
                events.append(
                    AwsEvent(kind, str(name), bytes(message.payload), str(text) if text else None)
                )
        except ParserError as exc:
            raise APIConnectionError(
                f"corrupt AWS event stream: {type(exc).__name__}: {exc}",
                provider=self._deployment.provider,
                model=self._deployment.model,
            ) from exc
        return events

    def flush(self) -> list[AwsEvent]:
        """A partial trailing frame is left for the translator's completeness check."""
        self._buffer = EventStreamBuffer()
        return []


class BedrockStreamTranslator:
    __slots__ = (
        "_blocks",
        "_created",
        "_deployment",
        "_id",
        "_json_tool",
        "_started",
        "_stopped",
        "_tools",
    )

    def __init__(self, deployment: Deployment, *, json_tool: str | None, created: int) -> None:
        self._deployment = deployment
        self._json_tool = json_tool
        self._created = created
        self._id = new_id()
        self._started = False
        self._stopped = False
        self._tools = 0  # tool calls seen so far: the next OpenAI tool index
        self._blocks: dict[int, int | None] = {}  # contentBlockIndex -> tool index (None: JSON)

    def _chunk(
        self, delta: Delta | None = None, finish: str | None = None, usage: Usage | None = None
    ) -> ChatChunk:
        choices = (
            [] if usage is not None else [ChunkChoice(delta=delta or Delta(), finish_reason=finish)]
        )
        return ChatChunk(
            id=self._id,
            created=self._created,
            model=self._deployment.model,
            choices=choices,
            usage=usage,
        )

    def _start(self) -> list[ChatChunk]:
        if self._started:
            return []
        self._started = True
        return [self._chunk(Delta(role="assistant", content=""))]

    def feed(self, event: AwsEvent) -> list[ChatChunk]:
        if event.message_type == "exception":
            raise error_from_event(event.name, event.payload, self._deployment)
        if event.message_type == "error":
            payload = orjson.dumps({"message": event.error_message or ""})
            raise error_from_event(
                event.name or "InternalServerException", payload, self._deployment
            )
        try:
            data: Any = orjson.loads(event.payload) if event.payload else {}
        except orjson.JSONDecodeError as exc:
            raise APIConnectionError(
                f"malformed {event.name} event: invalid JSON",
                provider=self._deployment.provider,
                model=self._deployment.model,
            ) from exc
        handler = getattr(self, f"_on_{event.name}", None)
        return handler(data) if handler is not None else []

    def _on_messageStart(self, data: Any) -> list[ChatChunk]:
        return self._start()

    def _on_contentBlockStart(self, data: Any) -> list[ChatChunk]:
        use = (data.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        block = int(data.get("contentBlockIndex", 0))
        if self._json_tool is not None and use.get("name") == self._json_tool:
            self._blocks[block] = None
            return []
        index = self._blocks[block] = self._tools
        self._tools += 1
        call = ToolCallDelta(
            index=index,
            id=use.get("toolUseId"),
            type="function",
            function=FunctionCallDelta(name=use.get("name"), arguments=""),
        )
        return [*self._start(), self._chunk(Delta(tool_calls=[call]))]

    def _on_contentBlockDelta(self, data: Any) -> list[ChatChunk]:
        delta = data.get("delta") or {}
        out = self._start()
        if "text" in delta:
            out.append(self._chunk(Delta(content=delta["text"])))
        elif "toolUse" in delta:
            fragment = (delta["toolUse"] or {}).get("input") or ""
            block = int(data.get("contentBlockIndex", 0))
            index = self._blocks.get(block, -1)
            if index is None:  # the forced JSON tool: its input is the answer's content
                out.append(self._chunk(Delta(content=fragment)))
            elif index >= 0:
                call = ToolCallDelta(index=index, function=FunctionCallDelta(arguments=fragment))
                out.append(self._chunk(Delta(tool_calls=[call])))
        elif "reasoningContent" in delta:
            text = (delta["reasoningContent"] or {}).get("text")
            if text:
                out.append(self._chunk(Delta(reasoning_content=text)))
        return out

    def _on_messageStop(self, data: Any) -> list[ChatChunk]:
        self._stopped = True
        reason = finish_reason(data.get("stopReason"), self._json_tool is not None)
        return [*self._start(), self._chunk(finish=reason or "stop")]

    def _on_metadata(self, data: Any) -> list[ChatChunk]:
        usage = usage_from(data.get("usage"))
        return [self._chunk(usage=usage)] if usage is not None else []

    def finish(self) -> list[ChatChunk]:
        if not self._stopped:
            raise APIConnectionError(
                "the stream ended before the answer was complete (no messageStop event)",
                provider=self._deployment.provider,
                model=self._deployment.model,
            )
        return []
