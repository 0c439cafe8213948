"""How a response_model is asked for on each provider, and how its answer is read back.

The mode comes from the provider's registry row (``ProviderSpec.structured_output``) unless
the caller names one. Every mode reuses the adapters' own ``response_format`` translation:

- ``strict``: ``json_schema`` with ``strict: true`` and the strict schema (OpenAI, Azure).
- ``json_schema``: ``json_schema`` with the portable schema; the adapter turns it into a
  forced tool (Anthropic, Bedrock), ``responseSchema`` (Gemini) or a grammar (local).
- ``json_object``: JSON mode; the schema travels in a system instruction.
- ``prompt``: no constraint at all; the schema travels in a system instruction and the JSON
  is extracted from the answer (a code fence or the first JSON value in the text).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import orjson
import pydantic
import pydantic_core

from chatgate.errors import InvalidRequestError
from chatgate.providers.registry import split_model
from chatgate.structured.schema import ENVELOPE_KEY, OutputSchema
from chatgate.types import Message, SystemMessage

__all__ = ["Mode", "choose_mode", "extract_json", "request_messages", "response_format", "validate"]

log = logging.getLogger("chatgate")

Mode = Literal["strict", "json_schema", "json_object", "prompt"]
MODES: tuple[str, ...] = get_args(Mode)

# Providers whose json_schema translation cannot express a recursive schema (Gemini's
# responseSchema inlines every $ref): a recursive response_model goes there in JSON mode.
_NO_RECURSION = frozenset({"gemini"})
_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL)
_OPENER = re.compile(r"[{\[]")
_NOT_NEWLINE = re.compile(r"[^\n]")


def choose_mode(model: str, schema: OutputSchema, requested: str | None) -> Mode:
    spec, _ = split_model(model)
    mode = requested or spec.structured_output
    if mode not in MODES:
        raise InvalidRequestError(
            f"structured_mode must be one of {', '.join(MODES)}, got {mode!r}",
            param="structured_mode",
        )
    if mode == "strict" and schema.strict is None:
        if requested == "strict":
            raise InvalidRequestError(
                f"structured_mode='strict' cannot express {schema.name}: "
                f"{schema.strict_problem}; or pass structured_mode='json_schema'",
                param="response_model",
            )
        log.warning(
            "response_model %s is sent without strict mode: %s", schema.name, schema.strict_problem
        )
        mode = "json_schema"
    if mode == "json_schema" and schema.recursive and spec.name in _NO_RECURSION:
        mode = "json_object"
    return mode  # type: ignore[return-value]  # checked against MODES above


def response_format(schema: OutputSchema, mode: Mode) -> dict[str, Any] | None:
    if mode == "strict":
        spec = {"name": schema.name, "schema": schema.strict, "strict": True}
        return {"type": "json_schema", "json_schema": spec}
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": schema.name, "schema": schema.portable},
        }
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def instruction(schema: OutputSchema) -> str:
    text = orjson.dumps(schema.portable).decode()
    return (
        "Answer with only a JSON object, no prose and no code fence, that matches this "
        f"JSON Schema:\n{text}"
    )


def request_messages(
    messages: Sequence[Message | Mapping[str, Any]], schema: OutputSchema, mode: Mode
) -> list[Message | Mapping[str, Any]]:
    """The caller's messages, with the schema instruction after any leading system messages
    in the modes where no response_format carries the schema."""
    out = list(messages)
    if mode in ("strict", "json_schema"):
        return out
    at = 0
    while at < len(out) and _role(out[at]) in ("system", "developer"):
        at += 1
    out.insert(at, SystemMessage(content=instruction(schema)))
    return out


def _role(message: Message | Mapping[str, Any]) -> Any:
    return message.get("role") if isinstance(message, Mapping) else message.role


def extract_json(text: str) -> Any:
    """The JSON value in an answer: the whole text, a fenced block, or the first value."""
    stripped = text.strip()
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        pass
    fenced = _FENCE.search(stripped)
    if fenced:
        try:
            return orjson.loads(fenced.group(1).strip())
        except orjson.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for match in _OPENER.finditer(stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        return value
    raise ValueError(_why_not_json(text))


def _why_not_json(text: str) -> str:
    """What is wrong with the JSON the answer holds (its fenced block, else what starts at its
    first bracket), with the line and column in the answer; or that it holds none."""
    fenced = _FENCE.search(text)
    opener = _OPENER.search(text)
    if fenced is not None:
        start, candidate = fenced.start(1), fenced.group(1)
    elif opener is not None:
        start, candidate = opener.start(), text[opener.start() :]
    else:
        return "not JSON: the answer contains no JSON value"
    # What precedes the candidate becomes blanks (newlines kept), which JSON skips: the
    # parser's line and column are then the answer's own.
    padded = _NOT_NEWLINE.sub(" ", text[:start]) + candidate
    try:
        pydantic_core.from_json(padded)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    return "not JSON: the answer contains no JSON value"  # the candidate parsed after all


def _location(loc: tuple[int | str, ...], enveloped: bool) -> str:
    parts = [ENVELOPE_KEY, *map(str, loc)] if enveloped else [str(p) for p in loc]
    return ".".join(parts) or "(root)"


def validate(text: str, schema: OutputSchema) -> tuple[Any, list[str]]:
    """(value, []) when the answer is valid; (None, errors) naming every problem otherwise."""
    try:
        data = extract_json(text)
    except ValueError as exc:
        return None, [str(exc)]
    if schema.enveloped:
        if not isinstance(data, dict) or ENVELOPE_KEY not in data:
            return None, [f"expected an object with the key {ENVELOPE_KEY!r}"]
        data = data[ENVELOPE_KEY]
    try:
        return schema.adapter.validate_python(data), []
    except pydantic.ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            got = orjson.dumps(error.get("input"), default=str).decode()
            got = got if len(got) <= 200 else got[:200] + "..."
            where = _location(error["loc"], schema.enveloped)
            errors.append(f"{where}: {error['msg']} (got {got})")
        return None, errors
