"""Canonical chunks -> Responses API stream events, for the gateway's streaming /v1/responses.

A stateful, I/O-free translator. The first chunk brings ``response.created`` and
``response.in_progress``; text, refusal and reasoning open an output item and a content part
(``output_item.added``, ``content_part.added``) and stream as ``*.delta`` events; each tool call
is an item of its tool's kind (chatgate.responses_api.tools): a ``function_call`` streams its
arguments as ``function_call_arguments.delta``; a ``custom_tool_call`` or ``local_shell_call``
comes whole when it is done (its JSON arguments are unwrapped then).
``finish()`` closes every open part and item (``*.done``) and ends with ``response.completed``
(or ``response.incomplete``) carrying the whole Response and its usage; ``fail()`` ends a stream
the upstream broke off with ``response.failed``. Every event has its ``sequence_number``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from chatgate.responses_api.reasoning import Carry
from chatgate.responses_api.request import Echo
from chatgate.responses_api.response import (
    Item,
    Seal,
    base_object,
    envelope_item,
    message_item,
    new_id,
    reasoning_item,
    refusal_part,
    response_usage,
    status_of,
    text_part,
)
from chatgate.responses_api.tools import ToolMap
from chatgate.types import ChatChunk, Delta, ToolCallDelta, Usage

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
        "_args",
        "_calls",
        "_carry",
        "_created_at",
        "_echo",
        "_id",
        "_model",
        "_open",
        "_output",
        "_pending",
        "_reason",
        "_seal",
        "_seq",
        "_started",
        "_tools",
        "_usage",
        "_wire_names",
    )

    def __init__(
        self,
        echo: Echo,
        *,
        model: str = "",
        tools: ToolMap | None = None,
        seal: Seal | None = None,
    ) -> None:
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
        self._tools = tools or ToolMap()
        self._seal = seal
        self._carry = Carry("")
        self._args: dict[int, str] = {}  # output index of a call -> its arguments so far
        self._wire_names: dict[int, str] = {}  # output index of a call -> upstream name

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

    def _close_call(self, index: int) -> list[Event]:
        item = self._output[index]
        name, arguments = self._wire_names[index], self._args[index]
        final = self._tools.item(item["id"], item["call_id"], name, arguments, "completed")
        self._output[index] = final
        if final["type"] == "function_call":
            fields = {"name": final["name"], "arguments": arguments}
            return [
                self._emit("response.function_call_arguments.done", **self._where(index), **fields)
            ]
        if final["type"] == "custom_tool_call":
            fields = {"input": final["input"]}
            return [
                self._emit("response.custom_tool_call_input.done", **self._where(index), **fields)
            ]
        return []

    def _close(self, index: int, status: str = "completed") -> list[Event]:
        item = self._output[index]
        if index in self._wire_names:
            events = self._close_call(index)
            item = self._output[index]
        else:
            events = self._close_part(index)
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
        self._carry.reasoning += delta.reasoning_content or ""
        self._carry.take_blocks(delta.model_extra)
        if delta.reasoning_content:
            events += self._part_delta("reasoning", "reasoning_text", delta.reasoning_content)
        if delta.content:
            events += self._part_delta("message", "output_text", delta.content)
        if delta.refusal:
            events += self._part_delta("message", "refusal", delta.refusal)
        for call in delta.tool_calls or ():
            events += self._call_delta(call)
        return events

    def _call_delta(self, call: ToolCallDelta) -> list[Event]:
        events = self._close(self._open) if self._open is not None else []
        self._carry.take_call(call.id, call.model_extra)
        function = call.function
        if call.index not in self._calls:
            item_id, name = new_id("fc"), (function.name if function else None) or ""
            args = (item_id, call.id or "", name, "", "in_progress")
            index, added = self._add(self._tools.item(*args), self._tools.item(*args))
            self._calls[call.index] = index
            self._wire_names[index], self._args[index] = name, ""
            events += added
        arguments = function.arguments if function else None
        if arguments:
            index = self._calls[call.index]
            self._args[index] += arguments
            if self._output[index]["type"] == "function_call":
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
        envelope = envelope_item(self._carry, self._seal)
        if envelope is not None:
            index, added = self._add(envelope, envelope)
            events += [*added, *self._close(index)]
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
