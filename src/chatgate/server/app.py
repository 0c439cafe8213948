"""The gateway as one pure ASGI app: create_app(config) -> app.

Routing is a dict lookup on (method, path); handlers are thin functions that get the shared
GatewayState. Every error leaves through ``_answer_error`` in OpenAI's error shape.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from chatgate.config import Config
from chatgate.errors import ChatgateError
from chatgate.providers.registry import prepare_deployment, stop_prepared
from chatgate.server.anthropic_routes import anthropic_error, messages
from chatgate.server.asgi import (
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_json,
)
from chatgate.server.errors import GatewayError, openai_error
from chatgate.server.models import ModelTable
from chatgate.server.openai_routes import chat_completions, list_models
from chatgate.server.state import GatewayState
from chatgate.transport import http

__all__ = ["create_app"]

log = logging.getLogger("chatgate.server")

Handler = Callable[[Scope, Receive, Send, GatewayState], Awaitable[None]]
BodyHandler = Callable[[Scope, Receive, Send, GatewayState, bytes], Awaitable[None]]


async def _liveness(scope: Scope, receive: Receive, send: Send, state: GatewayState) -> None:
    await send_json(send, 200, {"status": "ok"})


async def _readiness(scope: Scope, receive: Receive, send: Send, state: GatewayState) -> None:
    await send_json(send, 200, {"status": "ok", "models": len(state.models.names)})


_GET: dict[str, Handler] = {
    "/v1/models": list_models,
    "/models": list_models,
    "/health/liveness": _liveness,
    "/health/readiness": _readiness,
}
_POST: dict[str, BodyHandler] = {
    "/v1/chat/completions": chat_completions,
    "/chat/completions": chat_completions,
    "/v1/messages": messages,
}
_PUBLIC = frozenset({"/health/liveness", "/health/readiness"})


def _presented_key(scope: Scope) -> str | None:
    auth = header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return header(scope, b"x-api-key")


def _authorize(scope: Scope, state: GatewayState) -> None:
    if state.master_key is None or scope["path"] in _PUBLIC:
        return
    key = _presented_key(scope)
    if key is None:
        raise GatewayError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            type_="authentication_error",
            code="missing_api_key",
        )
    if not hmac.compare_digest(key.encode(), state.master_key.encode()):
        raise GatewayError(
            401, "invalid API key", type_="authentication_error", code="invalid_api_key"
        )


def create_app(
    config: Config | None = None, *, zero_config: bool | None = None
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    config = config or Config()
    if zero_config is None:
        zero_config = not config.model_list
    state = GatewayState(
        config=config,
        models=ModelTable(config, zero_config=zero_config),
        master_key=config.general_settings.master_key,
    )
    limit = config.general_settings.max_request_bytes

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, state)
            return
        if scope["type"] != "http":
            return
        try:
            _authorize(scope, state)
            path, method = scope["path"], scope["method"]
            if method == "POST" and (body_handler := _POST.get(path)) is not None:
                body = await read_body(receive, limit)
                await body_handler(scope, receive, send, state, body)
            elif method == "GET" and (handler := _GET.get(path)) is not None:
                await handler(scope, receive, send, state)
            elif path in _POST or path in _GET:
                raise GatewayError(405, f"{method} is not allowed on {path}")
            else:
                raise GatewayError(404, f"no route {method} {path}", code="not_found")
        except ClientGone:
            return
        except BodyTooLarge:
            too_large = GatewayError(413, f"the body is larger than {limit} bytes")
            await _answer_error(scope, send, too_large)
        except Exception as exc:  # the one place every error becomes an HTTP answer
            await _answer_error(scope, send, exc)

    return app


async def _answer_error(scope: Scope, send: Send, exc: Exception) -> None:
    shape = anthropic_error if scope["path"] == "/v1/messages" else openai_error
    status, body, headers = shape(exc)
    if status >= 500 and not isinstance(exc, GatewayError):
        log.warning("request failed: %s: %s", type(exc).__name__, exc)
    await send_json(send, status, body, headers.items())


async def _warm_up(state: GatewayState) -> None:
    """Start managed upstreams (the local model) now, so the first request is not the slow one.
    A failure is logged, not fatal: the other models keep serving and the request retries it."""
    for name in state.models.names:
        try:
            await prepare_deployment(state.models.resolve(name).deployment)
        except ChatgateError as exc:
            log.warning("could not start model %s: %s", name, exc)


async def _lifespan(receive: Receive, send: Send, state: GatewayState) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await _warm_up(state)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop_prepared()
            await http.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
