"""What an error means for routing, and how long to wait before the next try."""

from __future__ import annotations

import enum
import random

from chatgate.errors import (
    APIStatusError,
    AuthenticationError,
    ChatgateError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    SharedStateUnavailableError,
)

__all__ = ["Fault", "backoff", "classify", "cooldown_for"]

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

    A bad key or a missing model will not fix itself in the next second; a 429 says how long.
    ``cooldown_time`` 0 turns cooldowns off altogether."""
    if cooldown_time <= 0:
        return None
    if isinstance(exc, AuthenticationError | NotFoundError):
        return cooldown_time
    if isinstance(exc, RateLimitError) and exc.retry_after:
        return exc.retry_after
    return None


def backoff(
    retry: int, retry_after: float | None, base: float, cap: float, rng: random.Random
) -> float:
    """Full-jitter exponential backoff (uniform in [0, min(cap, base * 2**retry)]), but never
    shorter than the provider's Retry-After."""
    jitter = rng.uniform(0.0, min(cap, base * (2.0**retry)))
    return max(jitter, retry_after or 0.0)
