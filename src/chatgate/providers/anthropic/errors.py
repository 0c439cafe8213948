"""Anthropic error bodies ({"type": "error", "error": {"type", "message"}}) -> our error tree.

Classified by HTTP status and ``error.type``. One named quirk reads the message: Anthropic
reports a prompt over the context window as a plain ``invalid_request_error`` whose only
distinguishing mark is its text ("prompt is too long: N tokens > M maximum"), so
``is_context_window_message`` matches that text and nothing else does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from chatgate.errors import APIStatusError, ContextWindowExceededError, error_for_status
from chatgate.providers.base import Deployment

__all__ = [
    "STATUS_BY_TYPE",
    "error_from_payload",
    "is_context_window_message",
    "map_error",
]

STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# QUIRK(anthropic-context-window): no error code exists for this; the text is the only signal.
_CONTEXT_WINDOW = re.compile(
    r"^prompt is too long: \d+ tokens > \d+ maximum|input length and `max_tokens` exceed "
    r"context limit",
    re.IGNORECASE,
)
_MAX_MESSAGE_CHARS = 2000


def is_context_window_message(message: str) -> bool:
    return _CONTEXT_WINDOW.search(message) is not None


def _build(
    status: int,
    headers: Mapping[str, str] | None,
    parsed: Any,
    raw: str,
    deployment: Deployment,
) -> APIStatusError:
    error = parsed.get("error") if isinstance(parsed, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    message = str(error.get("message") or kind or "") if isinstance(error, dict) else raw
    message = message[:_MAX_MESSAGE_CHARS] or f"HTTP {status} with no error message"
    cls: type[APIStatusError] | None = None
    if kind == "invalid_request_error" and is_context_window_message(message):
        cls = ContextWindowExceededError
    request_id = parsed.get("request_id") if isinstance(parsed, dict) else None
    return error_for_status(
        status,
        message,
        headers,
        cls=cls,
        provider=deployment.provider,
        model=deployment.model,
        request_id=request_id if isinstance(request_id, str) else None,
        body=parsed if parsed is not None else raw,
    )


def map_error(
    status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
) -> APIStatusError:
    """An error status from the Messages API."""
    try:
        parsed: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    return _build(status, headers, parsed, body.decode("utf-8", "replace"), deployment)


def error_from_payload(payload: Mapping[str, Any], deployment: Deployment) -> APIStatusError:
    """An error that arrived inside a 200 answer (a stream's ``error`` event): the status is
    the one Anthropic uses for that error type."""
    error = payload.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    status = STATUS_BY_TYPE.get(kind, 500) if isinstance(kind, str) else 500
    return _build(status, None, dict(payload), "", deployment)
