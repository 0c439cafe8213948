"""Errors as HTTP: the status a client should see and OpenAI's error JSON shape."""

from __future__ import annotations

from typing import Any

from chatgate.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BudgetExceededError,
    ChatgateError,
    DeploymentDisabledError,
    InvalidRequestError,
    MissingAPIKeyError,
    NoAnswerError,
    PermissionDeniedError,
    SharedStateUnavailableError,
)

__all__ = ["GatewayError", "openai_error"]

_NO_RETRY = {"x-should-retry": "false"}  # honoured by the openai and anthropic SDKs


class GatewayError(Exception):
    """An error the gateway itself answers with (bad JSON, unknown model, auth...)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}


def _body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openai_error(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for any error, in OpenAI's shape. Upstream credential failures
    are the gateway's problem, not the caller's, so they become 502 rather than 401/403.
    Every answer and SSE error event is built here from ``exc.message`` and ``exc.body``,
    already scrubbed where the error entered the core (chatgate.redact): none is scrubbed
    again here, so there is one place to get right, not one per route."""
    if isinstance(exc, GatewayError):
        return exc.status, _body(exc.message, exc.type, exc.param, exc.code), exc.headers
    if isinstance(exc, BudgetExceededError):  # 402: SDKs do not retry it, and must not
        return 402, _body(exc.message, "budget_error", None, "budget_exceeded"), {}
    if isinstance(exc, MissingAPIKeyError):
        msg = f"the gateway has no credentials for this model: {exc.message}"
        return 500, _body(msg, "server_error", None, "upstream_not_configured"), {}
    if isinstance(exc, InvalidRequestError):
        return 400, _body(exc.message, "invalid_request_error", exc.param, None), {}
    # the operator's to fix: clients' retry loops (the SDKs retry every 5xx) would not help
    if isinstance(exc, DeploymentDisabledError):  # its message names each deployment's state
        return 502, _body(exc.message, "upstream_error", None, exc.code), dict(_NO_RETRY)
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        msg = f"the upstream provider rejected the gateway's credentials: {exc.message}"
        return 502, _body(msg, "upstream_error", None, "upstream_auth"), dict(_NO_RETRY)
    if isinstance(exc, SharedStateUnavailableError):  # fail closed: the gateway's own Redis
        return 503, _body(exc.message, "server_error", None, exc.code), _retry_after(exc)
    if isinstance(exc, APIStatusError):
        headers = _retry_after(exc)
        status = exc.status_code if exc.status_code >= 400 else 502
        status = 400 if status == 422 else status  # the upstream refused the request: a 400
        code = _upstream_code(exc)
        type_ = "invalid_request_error" if status < 500 else "upstream_error"
        return status, _body(exc.message, type_, None, code), headers
    if isinstance(exc, APITimeoutError):
        return 504, _body(exc.message, "upstream_error", None, "upstream_timeout"), {}
    if isinstance(exc, APIConnectionError):
        return 502, _body(exc.message, "upstream_error", None, "upstream_unreachable"), {}
    if isinstance(exc, NoAnswerError):  # 502: the upstream's answer is unusable
        return 502, _body(exc.message, "upstream_error", None, exc.code), {}
    if isinstance(exc, ChatgateError):
        return 500, _body(exc.message, "server_error", None, None), {}
    return 500, _body("internal error", "server_error", None, None), {}


def _retry_after(exc: ChatgateError) -> dict[str, str]:
    if exc.retry_after is None:
        return {}
    return {"retry-after": str(max(1, round(exc.retry_after)))}


def _upstream_code(exc: APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None
