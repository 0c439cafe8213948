"""Canonical chunks -> Responses API stream events, for the gateway's streaming /v1/responses.

A stateful, I/O-free translator. The first chunk brings ``response.created`` and
``response.in_progress``; text, refusal and reasoning open an output item and a content part
(``output_item.added``, ``content_part.added``) and stream as ``*.delta`` events; each tool call
is a ``function_call`` item whose arguments stream as ``function_call_arguments.delta``.
``finish()`` closes every open part and item (``*.done``) and ends with ``response.completed``
(or ``response.incomplete``) carrying the whole Response and its usage; ``fail()`` ends a stream
the upstream broke off with ``response.failed``. Every event has its ``sequence_number``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from chatgate.responses_api.request import Echo
from chatgate.responses_api.response import (
    Item,
    base_object,
    function_call_item,
    message_item,
    new_id,
    reasoning_item,
    refusal_part,
    response_usage,
    status_of,
    text_part,
)
from chatgate.types import ChatChunk, Delta, Usage

__all__ = ["ChunksToResponseEvents", "Event", "encode"]

Event = dict[str, Any]  # its "type" is the SSE event name

# content part type -> (delta event, done event, the part's text field)
_PARTS = {
    "output_text": ("response.output_text.delta", "response.output_text.done", "text"),
    "refusal": ("response.refusal.delta", "response.refusal.done", "refusal"),
    "reasoning_text": ("response.reasoning_text.delta", "response.reasoning_text.done", "text"),
}


def encode(events: list[Event]) -> bytes:
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        for event in events
    )


def _empty_part(kind: str) -> Item:
    if kind == "output_text":
        return text_part("")
    if kind == "refusal":
        return refusal_part("")
    return {"type": "reasoning_text", "text": ""}


class ChunksToResponseEvents:
    __slots__ = (
        "_calls",
        "_created_at",
        "_echo",
        "_id",
        "_model",
        "_open",
        "_output",
        "_pending",
        "_reason",
        "_seq",
        "_started",
        "_usage",
    )

    def __init__(self, echo: Echo, *, model: str = "") -> None:
        self._echo = echo
        self._model = model
        self._id = new_id("resp")
        self._created_at = int(time.time())
        self._seq = 0
        self._started = False
        self._output: list[Item] = []
        self._pending: list[int] = []  # output indexes of items not yet done, in order
        self._open: int | None = None  # the message or reasoning item deltas go to
        self._calls: dict[int, int] = {}  # tool-call index -> output index
        self._reason: str | None = None
        self._usage: Usage | None = None

    # -- events -------------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _response(self, status: str) -> dict[str, Any]:
        return base_object(self._id, self._created_at, self._model, self._echo, status)

    def _start(self, chunk: ChatChunk | None) -> list[Event]:
        self._started = True
        if chunk is not None and chunk.model:
            self._model = chunk.model
        return [
            self._emit("response.created", response=self._response("in_progress")),
            self._emit("response.in_progress", response=self._response("in_progress")),
        ]

    def _where(self, index: int) -> dict[str, Any]:
        return {"item_id": self._output[index]["id"], "output_index": index}

    # -- items and parts ----------------------------------------------------------------------

    def _add(self, item: Item, empty: Item) -> tuple[int, list[Event]]:
        index = len(self._output)
        self._output.append(item)
        self._pending.append(index)
        return index, [self._emit("response.output_item.added", output_index=index, item=empty)]

    def _close_part(self, index: int) -> list[Event]:
        parts: list[Item] = self._output[index]["content"]
        if not parts:
            return []
        part = parts[-1]
        _, done, field = _PARTS[part["type"]]
        where = {**self._where(index), "content_index": len(parts) - 1}
        extra: dict[str, Any] = {"logprobs": []} if part["type"] == "output_text" else {}
        return [
            self._emit(done, **where, **{field: part[field]}, **extra),
            self._emit("response.content_part.done", **where, part=dict(part)),
        ]

    def _close(self, index: int, status: str = "completed") -> list[Event]:
        item = self._output[index]
        events = self._close_part(index) if item["type"] != "function_call" else []
        if item["type"] == "function_call":
            events.append(
                self._emit(
                    "response.function_call_arguments.done",
                    **self._where(index),
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        item["status"] = status if item["type"] == "message" else "completed"
        self._pending.remove(index)
        if self._open == index:
            self._open = None
        events.append(self._emit("response.output_item.done", output_index=index, item=item))
        return events

    def _part_delta(self, item_type: str, part_type: str, text: str) -> list[Event]:
        events: list[Event] = []
        index = self._open
        if index is None or self._output[index]["type"] != item_type:
            if index is not None:
                events += self._close(index)
            item_id = new_id("msg" if item_type == "message" else "rs")
            if item_type == "message":
                item, empty = (message_item(item_id, [], "in_progress") for _ in range(2))
            else:
                item, empty = (reasoning_item(item_id, "", "in_progress") for _ in range(2))
            index, added = self._add(item, empty)
            events += added
            self._open = index
        parts: list[Item] = self._output[index]["content"]
        if not parts or parts[-1]["type"] != part_type:
            events += self._close_part(index)
            parts.append(_empty_part(part_type))
            where = {**self._where(index), "content_index": len(parts) - 1}
            events.append(
                self._emit("response.content_part.added", **where, part=_empty_part(part_type))
            )
        delta_event, _, field = _PARTS[part_type]
        parts[-1][field] += text
        where = {**self._where(index), "content_index": len(parts) - 1}
        extra: dict[str, Any] = {"logprobs": []} if part_type == "output_text" else {}
        events.append(self._emit(delta_event, **where, delta=text, **extra))
        return events

    def _delta(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning_content:
            events += self._part_delta("reasoning", "reasoning_text", delta.reasoning_content)
        if delta.content:
            events += self._part_delta("message", "output_text", delta.content)
        if delta.refusal:
            events += self._part_delta("message", "refusal", delta.refusal)
        for call in delta.tool_calls or ():
            if self._open is not None:
                events += self._close(self._open)
            function = call.function
            if call.index not in self._calls:
                item_id, name = new_id("fc"), (function.name if function else None) or ""
                args = (item_id, call.id or "", name, "", "in_progress")
                index, added = self._add(function_call_item(*args), function_call_item(*args))
                self._calls[call.index] = index
                events += added
            arguments = function.arguments if function else None
            if arguments:
                index = self._calls[call.index]
                self._output[index]["arguments"] += arguments
                events.append(
                    self._emit(
                        "response.function_call_arguments.delta",
                        **self._where(index),
                        delta=arguments,
                    )
                )
        return events

    # -- the translator -----------------------------------------------------------------------

    def feed(self, chunk: ChatChunk) -> list[Event]:
        events = [] if self._started else self._start(chunk)
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # a Response has one answer
            events += self._delta(choice.delta)
            if choice.finish_reason is not None:
                self._reason = choice.finish_reason
        return events

    def finish(self) -> list[Event]:
        events = [] if self._started else self._start(None)
        status, incomplete = status_of(self._reason)
        for index in list(self._pending):
            events += self._close(index, status)
        response = self._response(status)
        response.update(
            incomplete_details=incomplete, output=self._output, usage=response_usage(self._usage)
        )
        events.append(self._emit(f"response.{status}", response=response))
        return events

    def fail(self, message: str, code: str = "server_error") -> list[Event]:
        """The upstream broke off: ``response.failed`` with what was produced so far."""
        events = [] if self._started else self._start(None)
        response = self._response("failed")
        response.update(
            error={"code": code, "message": message},
            output=self._output,
            usage=response_usage(self._usage),
        )
        events.append(self._emit("response.failed", response=response))
        return events
