"""Partial objects while a structured answer streams: each time a top-level field of the
JSON object is complete, the fields so far; at the end, the validated instance.

A field counts as complete once the next field has begun or the object has closed, so a
partial never shows a half-written value. There is no validation retry while streaming:
an answer that does not validate raises StructuredOutputError with its one attempt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
import pydantic_core

from chatgate.chat_request import MessageLike
from chatgate.client import acompletion, completion
from chatgate.errors import StructuredOutputError
from chatgate.structured.modes import choose_mode, request_messages, response_format, validate
from chatgate.structured.run import StructuredAttempt, _check_params
from chatgate.structured.schema import ENVELOPE_KEY, OutputSchema, output_schema
from chatgate.types import ChatChunk, ChatResponse

__all__ = ["PartialParser", "StructuredPartial", "astream_structured", "stream_structured"]

T = TypeVar("T")


@dataclass(frozen=True)
class StructuredPartial(Generic[T]):
    """``fields``: the complete top-level fields so far (in order); ``done`` with ``value``
    (the validated instance) and ``raw`` on the last event."""

    fields: dict[str, Any]
    done: bool = False
    value: T | None = None
    raw: ChatResponse | None = field(default=None, repr=False)


class PartialParser:
    """Feeds streamed text; says when more top-level fields are complete. No I/O."""

    def __init__(self, schema: OutputSchema) -> None:
        self._schema = schema
        self._text: list[str] = []
        self._emitted = 0

    def feed(self, delta: str) -> dict[str, Any] | None:
        self._text.append(delta)
        text = "".join(self._text)
        start = text.find("{")
        if start < 0:
            return None
        try:
            data = pydantic_core.from_json(text[start:], allow_partial=True)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        if self._schema.enveloped:  # the envelope has one field: report its finished items
            inner = data.get(ENVELOPE_KEY)
            data = {ENVELOPE_KEY: inner[:-1]} if isinstance(inner, list) and inner else {}
            count = len(data.get(ENVELOPE_KEY, []))
        else:
            data = dict(list(data.items())[:-1])
            count = len(data)
        if count <= self._emitted:
            return None
        self._emitted = count
        return data

    @property
    def text(self) -> str:
        return "".join(self._text)


def _prepare(model: str, messages: Sequence[MessageLike], response_model: Any,
             params: dict[str, Any]) -> tuple[OutputSchema, list[MessageLike]]:  # fmt: skip
    _check_params(params, 0)
    schema = output_schema(response_model)
    mode = choose_mode(model, schema, params.pop("structured_mode", None))
    fmt = response_format(schema, mode)
    if fmt is not None:
        params["response_format"] = fmt
    return schema, request_messages(messages, schema, mode)


def _delta(chunk: ChatChunk) -> str:
    return (chunk.choices[0].delta.content or "") if chunk.choices else ""


def _finish(schema: OutputSchema, final: ChatResponse) -> StructuredPartial[Any]:
    text = final.content or ""
    value, errors = validate(text, schema)
    if errors:
        attempt = StructuredAttempt(1, text, errors, final)
        raise StructuredOutputError(
            f"{schema.name}: the streamed answer does not validate: " + "; ".join(errors[:5]),
            attempts=[attempt],
            reason="retries",
            usage=final.usage,
            cost=final.meta.cost,
        )
    data = orjson.loads(orjson.dumps(schema.adapter.dump_python(value, mode="json")))
    fields = data if isinstance(data, dict) and not schema.enveloped else {ENVELOPE_KEY: data}
    return StructuredPartial(fields, done=True, value=value, raw=final)


async def astream_structured(
    model: str, messages: Sequence[MessageLike], response_model: type[T], **params: Any
) -> AsyncIterator[StructuredPartial[T]]:
    """Partial objects as fields complete, then the validated instance (``done=True``)."""
    schema, sent = _prepare(model, messages, response_model, params)
    parser = PartialParser(schema)
    stream = await acompletion(model, sent, stream=True, **params)
    async for chunk in stream:
        if (fields := parser.feed(_delta(chunk))) is not None:
            yield StructuredPartial(fields)
    yield _finish(schema, await stream.afinal())


def stream_structured(
    model: str, messages: Sequence[MessageLike], response_model: type[T], **params: Any
) -> Iterator[StructuredPartial[T]]:
    """The blocking form of ``astream_structured``."""
    schema, sent = _prepare(model, messages, response_model, params)
    parser = PartialParser(schema)
    stream = completion(model, sent, stream=True, **params)
    for chunk in stream:
        if (fields := parser.feed(_delta(chunk))) is not None:
            yield StructuredPartial(fields)
    yield _finish(schema, stream.final())
