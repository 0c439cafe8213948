"""When a tiered call retries on the next tier (``escalate_on``), judged on what the cheaper
tier gave: a whole answer, a stream whose answer ended before the caller saw any of it, or an
error. A stream the caller has begun to read is never replaced (docs/routing.md).
"""

from __future__ import annotations

from collections.abc import Collection

import orjson

from chatgate.errors import (
    APIError,
    APIStatusError,
    ChatgateError,
    NoAnswerError,
    NoDeploymentAvailableError,
    TruncatedResponseError,
)
from chatgate.types import ChatRequest, ChatResponse
from chatgate.wire_chunk import StreamItem, WireChunk

__all__ = ["answer_escalates", "error_escalates", "shows_answer"]


def error_escalates(exc: ChatgateError, on: Collection[str]) -> bool:
    """A failure of the tier, not of the request: ``length`` for a truncation raised by
    ``raise_on_truncation``; ``error`` for an outage, a rate limit, a 5xx, no deployment
    available or no answer — never for a request the upstream refused (4xx but 408/409/429)."""
    if isinstance(exc, TruncatedResponseError):
        return "length" in on
    if "error" not in on or not isinstance(exc, APIError):
        return False
    if isinstance(exc, NoAnswerError | NoDeploymentAvailableError):
        return True
    return exc.retryable or not isinstance(exc, APIStatusError)


def answer_escalates(request: ChatRequest, answer: ChatResponse, on: Collection[str]) -> bool:
    if "length" in on and answer.truncated:
        return True
    if "empty" in on and _empty(answer):
        return True
    return "invalid_json" in on and not _valid_structured(request, answer)


def _empty(answer: ChatResponse) -> bool:
    """Refused (content_filter, or a ``refusal`` instead of content) or nothing at all."""
    if answer.finish_reason == "content_filter":
        return True
    if not answer.choices:
        return True
    message = answer.choices[0].message
    if message.tool_calls:
        return False
    return not (message.content or "").strip() or bool(message.refusal)


def shows_answer(item: StreamItem) -> bool:
    """A chunk that carries the answer (text or a tool call): once one is read, an empty
    answer is ruled out and the stream can go to the caller."""
    if isinstance(item, WireChunk):
        choices = item.data.get("choices") or []
        delta = choices[0].get("delta") or {} if choices else {}
        return bool((delta.get("content") or "").strip() or delta.get("tool_calls"))
    if not item.choices:
        return False
    delta = item.choices[0].delta
    return bool((delta.content or "").strip() or delta.tool_calls)


def _valid_structured(request: ChatRequest, answer: ChatResponse) -> bool:
    """For a JSON response format: the answer parses, and for a schema is an object with the
    schema's top-level ``required`` keys (a full JSON Schema check is chatgate.structured's)."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return True
    try:
        value = orjson.loads(answer.content or "")
    except orjson.JSONDecodeError:
        return False
    schema = (fmt.json_schema or {}).get("schema")
    if fmt.type != "json_schema" or not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" and not isinstance(value, dict):
        return False
    required = schema.get("required") or []
    return not isinstance(value, dict) or all(key in value for key in required)
