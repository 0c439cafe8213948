"""Bedrock errors -> chatgate's tree, by the AWS error type (``x-amzn-errortype``, or the
``:exception-type`` of a stream exception event), then by HTTP status.

One named quirk: Bedrock reports an over-long prompt only as a ``ValidationException`` whose
message says so (there is no structured code), so ``CONTEXT_WINDOW_QUIRK`` matches that text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from chatgate.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    error_for_status,
)
from chatgate.providers.base import Deployment

__all__ = ["CONTEXT_WINDOW_QUIRK", "error_from_event", "map_error"]

_MAX_MESSAGE_CHARS = 2000

# error type -> (class, retryable); None keeps the class's own default.
_BY_TYPE: dict[str, tuple[type[APIStatusError], bool | None]] = {
    "ValidationException": (BadRequestError, None),
    "AccessDeniedException": (PermissionDeniedError, None),
    "ResourceNotFoundException": (NotFoundError, None),
    "ThrottlingException": (RateLimitError, True),
    # A quota (tokens or requests per minute) that frees up with time: a rate limit. Bedrock
    # sends it with status 400, so retryable is set here rather than read from the status.
    "ServiceQuotaExceededException": (RateLimitError, True),
    "ModelNotReadyException": (RateLimitError, True),
    "ModelTimeoutException": (APIStatusError, True),  # 408
    # 424: the model failed while producing the answer; a new attempt usually succeeds.
    "ModelErrorException": (InternalServerError, True),
    "ModelStreamErrorException": (InternalServerError, True),
    "InternalServerException": (InternalServerError, True),
    "ServiceUnavailableException": (InternalServerError, True),
    "UnrecognizedClientException": (AuthenticationError, None),
    "ExpiredTokenException": (AuthenticationError, None),
    "InvalidSignatureException": (AuthenticationError, None),
    "IncompleteSignatureException": (AuthenticationError, None),
    "MissingAuthenticationTokenException": (AuthenticationError, None),
    "InvalidClientTokenId": (AuthenticationError, None),
}

# The named, tested text match (see module docstring); every other error is classified by type.
CONTEXT_WINDOW_QUIRK = re.compile(
    r"input is too long|too many input tokens|prompt is too long|"
    r"exceeds? the (?:maximum )?(?:context|input) (?:window|length)|"
    r"maximum context length|context window",
    re.IGNORECASE,
)


def _error_type(headers: Mapping[str, str], parsed: Any) -> str | None:
    """'ValidationException:http://internal.amazon.com/coral/...' -> 'ValidationException';
    falls back to the body's ``__type`` ('com.amazon.coral#ThrottlingException')."""
    raw = headers.get("x-amzn-errortype") or headers.get("X-Amzn-ErrorType")
    if not raw and isinstance(parsed, dict):
        raw = parsed.get("__type") or parsed.get("code")
    if not isinstance(raw, str) or not raw:
        return None
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]


def _build(
    status: int,
    error_type: str | None,
    message: str,
    headers: Mapping[str, str] | None,
    parsed: Any,
    deployment: Deployment,
) -> APIStatusError:
    message = message[:_MAX_MESSAGE_CHARS] or f"HTTP {status} with no error message"
    cls, retryable = _BY_TYPE.get(error_type or "", (None, None))
    if error_type == "ValidationException" and CONTEXT_WINDOW_QUIRK.search(message):
        cls = ContextWindowExceededError
    if error_type:
        message = f"{error_type}: {message}"
    error = error_for_status(
        status,
        message,
        headers,
        cls=cls,
        provider=deployment.provider,
        model=deployment.model,
        body=parsed,
    )
    if retryable is not None and not (headers and headers.get("x-should-retry")):
        error.retryable = retryable
    return error


def map_error(
    status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
) -> APIStatusError:
    try:
        parsed: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = body.decode("utf-8", "replace")
    message = ""
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("Message") or "")
    elif isinstance(parsed, str):
        message = parsed
    return _build(status, _error_type(headers, parsed), message, headers, parsed, deployment)


# Stream exception events carry the type in lowerCamelCase and no status of their own.
_EVENT_STATUS = {
    "InternalServerException": 500,
    "ModelStreamErrorException": 424,
    "ValidationException": 400,
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
}


def error_from_event(exception_type: str, payload: bytes, deployment: Deployment) -> APIStatusError:
    """An ``:message-type exception`` event in a ConverseStream -> the matching error."""
    error_type = exception_type[:1].upper() + exception_type[1:]
    try:
        parsed: Any = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        parsed = payload.decode("utf-8", "replace")
    message = str(parsed.get("message") or "") if isinstance(parsed, dict) else str(parsed or "")
    status = _EVENT_STATUS.get(error_type, 500)
    return _build(status, error_type, message, None, parsed, deployment)
