"""What an error means for routing, and how long to wait before the next try."""

from __future__ import annotations

import enum
import random
import time

from chatgate.errors import (
    APIStatusError,
    AuthenticationError,
    ChatgateError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SharedStateUnavailableError,
)
from chatgate.router.state import Stats

__all__ = [
    "Fault",
    "backoff",
    "classify",
    "cooldown_for",
    "disabled_by",
    "disabled_state",
    "failure_reason",
]

# The reason a cooldown records for a 404 whose body says the provider has no such model.
_MODEL_NOT_FOUND = "ModelNotFound"
# Cooldowns that waiting does not end: the upstream refused the deployment's credentials, or
# does not know its model. Keyed by the reason the state records (shared through Redis).
_DISABLING_FAULTS = {
    AuthenticationError.__name__: 401,
    PermissionDeniedError.__name__: 403,
    _MODEL_NOT_FOUND: 404,
}
_DISABLED_TEXT = {
    401: ("rejected its credentials", "fix the key"),
    403: ("denied its credentials permission", "fix the key's access"),
    404: ("does not know its model", "fix the model name"),
}
# How each provider's 404 body says "no such model", by field of its ``error``: OpenAI, Azure
# (whose deployment is the model), Anthropic, Gemini. A 404 without one (an HTML page from a
# proxy in the way, say) keeps the ordinary cooldown: it may be passing.
_MODEL_NOT_FOUND_CODES = {
    "code": frozenset({"model_not_found", "DeploymentNotFound"}),
    "type": frozenset({"not_found_error"}),
    "status": frozenset({"NOT_FOUND"}),
}
# Router clock (monotonic) -> wall clock, measured once so that one moment always prints the
# same: a disabled deployment's message is the same on every call.
_WALL_OFFSET = time.time() - time.monotonic()

# The upstream refused the request itself: every deployment would, and the same request
# again would too. Never retried, never counted against the deployment.
_REQUEST_STATUSES = frozenset({400, 413, 422})


class Fault(enum.Enum):
    RETRYABLE = "retryable"  # 429, 408, 409, 5xx, connection, timeout: retry, then fall back
    DEPLOYMENT = "deployment"  # this deployment cannot serve (401/403/404/402...): fall back
    CONTEXT_WINDOW = "context_window"  # context_window_fallbacks, else raise
    CONTENT_POLICY = "content_policy"  # content_policy_fallbacks, else raise
    REQUEST = "request"  # the request is wrong (400, 422): no other deployment will help
    REFUSED = "refused"  # shared state down, fail closed: every group would refuse it too


def classify(exc: ChatgateError) -> Fault:
    if isinstance(exc, SharedStateUnavailableError):
        return Fault.REFUSED
    if isinstance(exc, ContextWindowExceededError):
        return Fault.CONTEXT_WINDOW
    if isinstance(exc, ContentPolicyViolationError):
        return Fault.CONTENT_POLICY
    if isinstance(exc, InvalidRequestError) or exc.status_code in _REQUEST_STATUSES:
        return Fault.REQUEST  # before ``retryable``: not even x-should-retry makes these retried
    if exc.retryable:
        return Fault.RETRYABLE
    if isinstance(exc, APIStatusError):
        return Fault.DEPLOYMENT
    return Fault.REQUEST  # e.g. TruncatedResponseError: another deployment would do the same


def cooldown_for(exc: ChatgateError, cooldown_time: float) -> float | None:
    """A cooldown this error starts at once, or None to just count it as a failure.

    A refused key or a missing model will not fix itself in the next second; a 429 says how
    long. ``cooldown_time`` 0 turns cooldowns off altogether."""
    if cooldown_time <= 0:
        return None
    if isinstance(exc, AuthenticationError | PermissionDeniedError | NotFoundError):
        return cooldown_time
    if isinstance(exc, RateLimitError) and exc.retry_after:
        return exc.retry_after
    return None


def failure_reason(exc: ChatgateError) -> str:
    """What a failure is recorded as: the error's class name, or ``ModelNotFound`` for a 404
    whose body says the provider has no such model."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    if isinstance(exc, NotFoundError) and isinstance(error, dict):
        for field, codes in _MODEL_NOT_FOUND_CODES.items():
            value = error.get(field)
            if isinstance(value, str) and value in codes:
                return _MODEL_NOT_FOUND
    return type(exc).__name__


def backoff(
    retry: int, retry_after: float | None, base: float, cap: float, rng: random.Random
) -> float:
    """Full-jitter exponential backoff (uniform in [0, min(cap, base * 2**retry)]), but never
    shorter than the provider's Retry-After."""
    jitter = rng.uniform(0.0, min(cap, base * (2.0**retry)))
    return max(jitter, retry_after or 0.0)


def disabled_by(s: Stats, now: float) -> int | None:
    """The upstream status (401, 403, 404) that disabled the deployment: it cools down after
    its credentials were refused or its model was unknown, which waiting does not fix. None
    when it is not disabled."""
    if s.cooldown_until <= now or s.cooldown_reason is None:
        return None
    return _DISABLING_FAULTS.get(s.cooldown_reason)


def disabled_state(s: Stats, now: float) -> str | None:
    """How a disabled deployment's state reads in an error message, or None."""
    status = disabled_by(s, now)
    if status is None:
        return None
    what, fix = _DISABLED_TEXT[status]
    return (
        f"disabled: the upstream {what} ({status}) at {_utc(s.cooled_at)}; {fix} and reload "
        f"(chatgate tries it again with the first request after {_utc(s.cooldown_until)})"
    )


def _utc(monotonic: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(monotonic + _WALL_OFFSET))
