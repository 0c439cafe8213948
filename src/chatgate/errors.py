"""Every exception chatgate raises, in one tree that mirrors the ``openai`` SDK's.

```
ChatgateError
├── InvalidRequestError (also a ValueError)   bad input caught before any network call
│   ├── MissingAPIKeyError                    no key argument and no key in the env var
│   ├── UnsupportedParamsError                the provider cannot honour a parameter
│   ├── MessageTooLargeError                  one message exceeds a conversation's token budget
│   └── ConversationNotFoundError             no stored conversation has that id
├── TruncatedResponseError                    finish_reason "length" with raise_on_truncation
├── BudgetExceededError              402      a budget cannot cover the call (code budget_exceeded)
├── StructuredOutputError                     no attempt matched response_model (all attempts)
└── APIError                                  anything that came from talking to a provider
    ├── APIConnectionError                    connect failed, connection dropped, bad stream
    │   └── APITimeoutError
    ├── NoAnswerError                         the model stopped without a usable answer
    │   └── MalformedToolCallError            the model's tool call was unusable: no answer
    └── APIStatusError                        the provider answered with an error status
        ├── BadRequestError              400
        │   ├── ContextWindowExceededError
        │   └── ContentPolicyViolationError
        ├── AuthenticationError          401
        ├── PermissionDeniedError        403
        ├── NotFoundError                404
        ├── ConflictError                409
        ├── UnprocessableEntityError     422
        ├── RateLimitError               429
        ├── InternalServerError          >= 500
        └── NoDeploymentAvailableError   503, from the Router: every deployment cooling/full
            ├── SharedStateUnavailableError   shared state (Redis) down, shared_state_failure closed
            └── DeploymentDisabledError       every deployment refused (401/403; 404 model)
```

Every error carries ``provider``, ``model``, ``status_code``, ``request_id``, ``body`` (the
provider's parsed error body), ``retryable`` and ``retry_after`` (seconds or None). Errors are
classified by HTTP status and structured error codes, never by guessing from message text.
An error that came from a provider has been through ``chatgate.redact.scrub_error`` before
the caller sees it: no credential in its text, body, request id or causes, even when the
upstream echoed one.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from chatgate.retry_after import parse_retry_after

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ChatgateError",
    "ConflictError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "ConversationNotFoundError",
    "DeploymentDisabledError",
    "InternalServerError",
    "InvalidRequestError",
    "MalformedToolCallError",
    "MessageTooLargeError",
    "MissingAPIKeyError",
    "NoAnswerError",
    "NoDeploymentAvailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "SharedStateUnavailableError",
    "StructuredOutputError",
    "TruncatedResponseError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "error_for_status",
]


class ChatgateError(Exception):
    """Every error chatgate raises; carries ``retryable``, ``retry_after``, ``provider``,
    ``model`` and ``request_id``."""

    status_code: int | None = None
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        body: Any = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        if status_code is not None:
            self.status_code = status_code
        self.request_id = request_id
        self.body = body
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.attempt_log: list[Any] = []  # a Router's tries before giving up (types.Attempt)

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        parts = [self.message]
        if where:
            parts.append(f"[{where}]")
        if self.status_code is not None:
            parts.append(f"(status {self.status_code})")
        if self.request_id:
            parts.append(f"(request id {self.request_id})")
        return " ".join(parts)


class InvalidRequestError(ChatgateError, ValueError):
    """The request is wrong before it leaves this process; ``param`` names the field."""

    status_code = 400

    def __init__(self, message: str, *, param: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.param = param


class MissingAPIKeyError(InvalidRequestError):
    """No key for the provider: the message names the environment variable to set."""

    status_code = 401


class UnsupportedParamsError(InvalidRequestError):
    """The provider does not take a parameter the request set; ``param`` names it."""


class MessageTooLargeError(InvalidRequestError):
    """One message alone is larger than the conversation's token budget."""


class ConversationNotFoundError(InvalidRequestError):
    """``Conversation.load`` found no conversation stored under that id."""

    status_code = 404


class TruncatedResponseError(ChatgateError):
    """The answer stopped at max_tokens and the caller asked for that to raise."""


class BudgetExceededError(ChatgateError):
    """A budget cannot cover the call's worst-case cost. 402, not 429: waiting a few seconds
    does not help, so clients' retry loops must not hammer it. ``remaining`` is what is left
    (USD) and ``resets_at`` when the window starts over (None for a lifetime budget)."""

    status_code = 402
    code = "budget_exceeded"

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        limit: Decimal,
        remaining: Decimal,
        resets_at: datetime.datetime | None,
        **kw: Any,
    ) -> None:
        super().__init__(message, retryable=False, **kw)
        self.budget = budget
        self.limit = limit
        self.remaining = remaining
        self.resets_at = resets_at


class StructuredOutputError(ChatgateError):
    """No answer validated against the response_model. ``attempts`` holds every attempt (its
    raw answer and validation errors), ``reason`` why retrying stopped ("retries",
    "budget", "refusal"), ``usage`` and ``cost`` what all attempts took together."""

    def __init__(
        self,
        message: str,
        *,
        attempts: list[Any],
        reason: str,
        usage: Any = None,
        cost: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.attempts = attempts
        self.reason = reason
        self.usage = usage
        self.cost = cost


class APIError(ChatgateError):
    """The provider could not be reached or answered with an error."""


class APIConnectionError(APIError):
    """No answer from the provider: the connection failed or broke. Retryable."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """The provider did not answer within the timeout. Retryable."""


class NoAnswerError(APIError):
    """The provider answered, but the model stopped without a usable answer, and its finish
    reason has no OpenAI equivalent that says so (Gemini's ``OTHER``, ``MALFORMED_RESPONSE``,
    ``TOO_MANY_TOOL_CALLS``, ...): mapped to "stop", an agent loop would take an empty or cut
    answer for a finished one. ``finish_reason`` is the provider's reason, ``finish_message``
    its explanation when it sent one, ``usage`` what the call consumed (it is billed) and
    ``body`` the provider's whole answer (any partial text is there). Not retryable for a
    Router: it is the model's doing, not the deployment's, though asking again often works."""

    code = "no_answer"

    def __init__(
        self,
        message: str,
        *,
        finish_reason: str,
        finish_message: str | None = None,
        usage: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.finish_reason = finish_reason
        self.finish_message = finish_message
        self.usage = usage


class MalformedToolCallError(NoAnswerError):
    """The model's tool call could not be parsed or used, so there is no answer (Gemini's
    finishReason ``MALFORMED_FUNCTION_CALL`` or ``UNEXPECTED_TOOL_CALL``)."""

    code = "malformed_tool_call"


class APIStatusError(APIError):
    """The provider answered with an error status; ``status_code`` and ``body`` say which."""

    status_code: int = 0


class BadRequestError(APIStatusError):
    """400: the provider refused the request as malformed. Not retryable."""

    status_code = 400


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max_tokens) does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """The provider refused the request or the answer under its content policy."""


class AuthenticationError(APIStatusError):
    """401: the provider rejected the API key."""

    status_code = 401


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not use this model or feature."""

    status_code = 403


class NotFoundError(APIStatusError):
    """404: the model or endpoint does not exist at the provider."""

    status_code = 404


class ConflictError(APIStatusError):
    """409: the provider reports a conflict with the resource's state. Retryable."""

    status_code = 409
    retryable = True  # lock contention on the provider's side; the openai SDK retries it too


class UnprocessableEntityError(APIStatusError):
    """422: the provider understood the request but cannot process it."""

    status_code = 422


class RateLimitError(APIStatusError):
    """429: a rate or quota limit; ``retry_after`` says when to try again. Retryable."""

    status_code = 429
    retryable = True


class InternalServerError(APIStatusError):
    """5xx: the provider failed or is overloaded. Retryable."""

    status_code = 500
    retryable = True


class NoDeploymentAvailableError(APIStatusError):
    """The Router found no deployment it may send to (all cooling down, at their limits, or
    filtered out by tags); the message names each deployment's state. No request was sent."""

    status_code = 503
    retryable = True


class SharedStateUnavailableError(NoDeploymentAvailableError):
    """The shared limit state (Redis) cannot be reached and ``shared_state_failure`` is
    ``closed``: the call is refused rather than let a limit go unenforced. No request was
    sent; ``retry_after`` is when Redis is tried again."""

    code = "shared_state_unavailable"


class DeploymentDisabledError(NoDeploymentAvailableError):
    """Every deployment the call may use is disabled: its upstream refused its credentials
    (401/403) or does not know its model (404). That is not transient, so the call fails at
    once instead of waiting out the cooldown; it is the operator's to fix (the key or the
    model name, then a reload). The message names each
    deployment, the status and when. No request was sent; not retryable."""

    code = "deployment_disabled"
    retryable = False


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for_status(
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    cls: type[APIStatusError] | None = None,
    **kw: Any,
) -> APIStatusError:
    """The error class for an HTTP status, with retryable and retry_after read from headers."""
    if cls is None:
        cls = InternalServerError if status >= 500 else _BY_STATUS.get(status, APIStatusError)
    retryable = cls.retryable or status == 408
    retry_after = None
    if headers is not None:
        hint = headers.get("x-should-retry")
        if hint in ("true", "false"):
            retryable = hint == "true"
        retry_after = parse_retry_after(headers, status)
    return cls(message, status_code=status, retryable=retryable, retry_after=retry_after, **kw)
