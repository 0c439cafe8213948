"""Gemini's error body -> our error tree.

Google APIs answer ``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED",
"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}, ...]}}``.
The class comes from the HTTP status, refined by structured fields: ``ErrorInfo.reason``
``API_KEY_INVALID`` is an AuthenticationError although it arrives as 400 INVALID_ARGUMENT.
Retry hints come from headers first, then ``RetryInfo.retryDelay``.

Named quirk ``CONTEXT_WINDOW_QUIRK``: Gemini reports a too-long prompt only as 400
INVALID_ARGUMENT with the text "The input token count (N) exceeds the maximum number of tokens
allowed (M)" and no structured code, so that one case is recognised by its text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from chatgate.errors import (
    APIStatusError,
    AuthenticationError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    error_for_status,
)
from chatgate.providers.base import Deployment
from chatgate.retry_after import MAX_RETRY_AFTER_S

__all__ = ["CONTEXT_WINDOW_QUIRK", "blocked_prompt_error", "error_from_body", "retry_delay"]

CONTEXT_WINDOW_QUIRK = re.compile(
    r"input token count.*exceeds the maximum number of tokens", re.IGNORECASE | re.DOTALL
)
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"})
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")
_MAX_MESSAGE_CHARS = 2000


def _details(error: Mapping[str, Any], type_url: str) -> list[Mapping[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, Mapping) and d.get("@type") == type_url]


def retry_delay(error: Mapping[str, Any]) -> float | None:
    """Seconds from ``RetryInfo.retryDelay`` (a protobuf Duration in JSON: "12s", "0.5s")."""
    for info in _details(error, _RETRY_INFO):
        delay = info.get("retryDelay")
        match = _DELAY.match(delay) if isinstance(delay, str) else None
        if match is not None:
            seconds = float(match.group(1))
            return seconds if seconds <= MAX_RETRY_AFTER_S else None
    return None


def _classify(status: int, error: Mapping[str, Any]) -> type[APIStatusError] | None:
    reasons = {info.get("reason") for info in _details(error, _ERROR_INFO)}
    if reasons & _AUTH_REASONS:
        return AuthenticationError
    message = error.get("message")
    if (
        status == 400
        and error.get("status") == "INVALID_ARGUMENT"
        and isinstance(message, str)
        and CONTEXT_WINDOW_QUIRK.search(message)
    ):
        return ContextWindowExceededError
    return None


def error_from_body(
    status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
) -> APIStatusError:
    parsed: Any = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and parsed:  # the JSON-array stream form wraps it in a list
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("status") or "")
    else:
        error = {}
        message = body.decode("utf-8", "replace")
    message = message[:_MAX_MESSAGE_CHARS] or f"HTTP {status} with no error message"
    exc = error_for_status(
        status,
        message,
        headers,
        cls=_classify(status, error),
        provider=deployment.provider,
        model=deployment.model,
        body=parsed if parsed is not None else body.decode("utf-8", "replace"),
    )
    if exc.retry_after is None:
        exc.retry_after = retry_delay(error)
    return exc


def blocked_prompt_error(feedback: Mapping[str, Any], deployment: Deployment) -> APIStatusError:
    """A 200 answer with no candidates and ``promptFeedback.blockReason``: Gemini refused the
    prompt itself."""
    reason = feedback.get("blockReason")
    detail = feedback.get("blockReasonMessage")
    return ContentPolicyViolationError(
        f"Gemini blocked the prompt (promptFeedback.blockReason {reason})"
        + (f": {detail}" if detail else ""),
        provider=deployment.provider,
        model=deployment.model,
        body={"promptFeedback": dict(feedback)},
        retryable=False,
    )
