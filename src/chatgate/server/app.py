"""The gateway as one pure ASGI app: create_app(config) -> app.

Routing is a dict lookup on (method, path); handlers are thin functions that get the current
GatewayState and the request's RequestContext. Every error leaves through ``_answer_error`` in
the route's error shape; every request's context then goes to the usage pipeline (metrics and
the access log), off the request path.
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping

from chatgate.config import Config
from chatgate.errors import SharedStateUnavailableError
from chatgate.server.admin import ADMIN_PREFIX, admin
from chatgate.server.anthropic_routes import anthropic_error, anthropic_shaped, messages
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
from chatgate.server.console import UI_PATH, authorize_session, console, is_admin_key
from chatgate.server.context import RequestContext
from chatgate.server.count_tokens_route import count_tokens_route
from chatgate.server.embeddings_route import embeddings
from chatgate.server.errors import GatewayError, openai_error
from chatgate.server.gateway import WORKERS_ENV, Gateway, ReloadError
from chatgate.server.health import ReadinessCheck, run_checks
from chatgate.server.keys import PREFIX, KeyError_, KeyStoreUnavailable
from chatgate.server.metrics import CONTENT_TYPE_LATEST
from chatgate.server.models_route import MODEL_PREFIXES, list_models, retrieve_model
from chatgate.server.openai_routes import chat_completions
from chatgate.server.responses_route import responses
from chatgate.server.state import GatewayState
from chatgate.server.store_outage import is_store_error

__all__ = ["create_app"]

log = logging.getLogger("chatgate.server")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send, GatewayState, RequestContext], Awaitable[None]]
BodyHandler = Callable[[Scope, Receive, Send, GatewayState, bytes, RequestContext], Awaitable[None]]
PlainHandler = Callable[[Send, Gateway], Awaitable[None]]


async def _liveness(send: Send, gateway: Gateway) -> None:
    await send_json(send, 200, {"status": "ok"})


async def _readiness(send: Send, gateway: Gateway) -> None:
    ok, report = await run_checks(gateway.checks)
    models = len(gateway.state.models.names)
    body = {"status": "ok" if ok else "unavailable", "models": models, "checks": report}
    await send_json(send, 200 if ok else 503, body)


async def _metrics(send: Send, gateway: Gateway) -> None:
    payload = gateway.metrics.exposition()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", CONTENT_TYPE_LATEST.encode()),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _reload(send: Send, gateway: Gateway) -> None:
    if gateway.state.master_key is None:
        raise GatewayError(403, "admin endpoints need general_settings.master_key to be set")
    try:
        if os.environ.get(WORKERS_ENV):  # check here, then have the supervisor replace workers
            state = gateway.load_state()
            os.kill(os.getppid(), signal.SIGHUP)
            status = "restarting workers"
        else:
            state = gateway.reload()
            status = "reloaded"
    except ReloadError as exc:
        raise GatewayError(
            400, f"config not reloaded, the old one stays in force: {exc}", code="invalid_config"
        ) from None
    await send_json(send, 200, {"status": status, "models": state.models.names})


_GET: dict[str, Handler] = {"/v1/models": list_models, "/models": list_models}
_POST: dict[str, BodyHandler] = {
    "/v1/chat/completions": chat_completions,
    "/chat/completions": chat_completions,
    "/v1/messages": messages,
    "/v1/messages/count_tokens": count_tokens_route,
    "/v1/responses": responses,
    "/responses": responses,
    "/v1/embeddings": embeddings,
    "/embeddings": embeddings,
}
# Probes and scrapes: no usage record, no access-log line.
_PLAIN: dict[tuple[str, str], PlainHandler] = {
    ("GET", "/health/liveness"): _liveness,
    ("GET", "/health/readiness"): _readiness,
    ("GET", "/metrics"): _metrics,
    ("POST", "/admin/reload"): _reload,
}
_PUBLIC = frozenset({"/health/liveness", "/health/readiness", "/metrics"})
_KNOWN = frozenset({*_GET, *_POST, *(path for _, path in _PLAIN)})


def _presented_key(scope: Scope) -> str | None:
    auth = header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return header(scope, b"x-api-key")


async def _authorize(scope: Scope, state: GatewayState, ctx: RequestContext | None) -> None:
    """Who is calling: the master key (admin), a virtual key, or, on a gateway with no master
    key, anyone. A presented ``sk-cg-`` key is always checked, so its limits and budget apply
    and a revoked key is refused even on an open gateway."""
    path = scope["path"]
    if path in _PUBLIC and not (
        path == "/metrics" and state.config.general_settings.metrics_require_key
    ):
        return
    presented = _presented_key(scope)
    master = state.master_key
    if presented and master and hmac.compare_digest(presented.encode(), master.encode()):
        if ctx is not None:
            ctx.admin = True
        return
    if presented and presented.startswith(PREFIX) and state.services.keys is not None:
        try:
            record = await state.services.keys.authenticate(presented)
        except KeyError_ as exc:
            raise GatewayError(
                401, exc.message, type_="authentication_error", code=f"{exc.reason}_api_key"
            ) from None
        except KeyStoreUnavailable as exc:
            retry = {"retry-after": str(exc.retry_after)}
            raise GatewayError(
                503, exc.message, type_="server_error", code=exc.code, headers=retry
            ) from None
        if ctx is None:  # probes and /admin/reload: the master key only
            raise GatewayError(403, "this route needs the master key", type_="permission_error")
        ctx.authenticated(record)
        ctx.admin = is_admin_key(record)
        return
    if presented is None and await authorize_session(scope, state, ctx, time.time()):
        return  # a console session (the cookie), its CSRF token checked for a change
    if master is None:
        return  # an open gateway (loopback by default): no key needed
    if presented is None:
        raise GatewayError(
            401,
            "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            type_="authentication_error",
            code="missing_api_key",
        )
    raise GatewayError(401, "invalid API key", type_="authentication_error", code="invalid_api_key")


def create_app(
    config: Config | None = None,
    *,
    zero_config: bool | None = None,
    config_path: str | None = None,
    checks: Mapping[str, ReadinessCheck] | None = None,
    access_log: bool = False,
    freeze_heap: bool = False,
) -> ASGIApp:
    """The gateway app. ``config_path`` is what a reload re-reads; ``checks`` are extra named
    readiness checks; ``access_log`` writes the access log to stderr (``chatgate serve``);
    ``freeze_heap`` hides the start-up heap from the garbage collector (``gc.freeze``) and
    raises its young-generation threshold, for a process that is only this gateway
    (``chatgate serve``)."""
    gateway = Gateway(
        config or Config(),
        zero_config=zero_config,
        config_path=config_path,
        checks=checks,
        access_log=access_log,
        freeze_heap=freeze_heap,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, gateway)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        plain = _PLAIN.get((method, path))
        if plain is not None:
            await _plain(scope, send, gateway, plain)
            return
        state = gateway.state  # this request runs on this config, even across a reload
        route = path if path in _KNOWN else "admin" if path.startswith(ADMIN_PREFIX) else "other"
        if path.startswith(MODEL_PREFIXES):
            route = "/v1/models/{id}"
        elif _is_console(path):
            route = UI_PATH
        ctx = RequestContext.from_scope(scope, route)
        ctx.log_content = state.log_content
        in_flight = gateway.metrics.in_flight
        in_flight.inc()
        try:
            await _dispatch(scope, receive, send, state, ctx, method, path)
        except ClientGone:
            ctx.status = 499
            ctx.error_class = "ClientDisconnected"
        except BodyTooLarge:
            limit = state.config.general_settings.max_request_bytes
            too_large = GatewayError(413, f"the body is larger than {limit} bytes")
            await _answer_error(scope, send, too_large, ctx)
        except Exception as exc:  # the one place every error becomes an HTTP answer
            await _answer_error(scope, send, _database_down(exc, state), ctx)
        finally:
            in_flight.dec()
            ctx.finish()
            gateway.pipeline.submit(ctx)

    return app


async def _dispatch(
    scope: Scope,
    receive: Receive,
    send: Send,
    state: GatewayState,
    ctx: RequestContext,
    method: str,
    path: str,
) -> None:
    if _is_console(path):  # the page, its files and sign-in: each checks what it needs
        await console(scope, receive, send, state, ctx)
        return
    await _authorize(scope, state, ctx)
    if path.startswith(ADMIN_PREFIX):
        await admin(scope, receive, send, state, ctx)
    elif method == "POST" and (body_handler := _POST.get(path)) is not None:
        body = await read_body(receive, state.config.general_settings.max_request_bytes)
        await body_handler(scope, receive, send, state, body, ctx)
    elif method == "GET" and (handler := _GET.get(path)) is not None:
        await handler(scope, receive, send, state, ctx)
    elif method == "GET" and path.startswith(MODEL_PREFIXES):
        await retrieve_model(scope, receive, send, state, ctx)
    elif path in _KNOWN:
        raise GatewayError(405, f"{method} is not allowed on {path}")
    else:
        raise GatewayError(404, f"no route {method} {path}", code="not_found")


def _is_console(path: str) -> bool:
    return path == UI_PATH or path.startswith(UI_PATH + "/")


def _database_down(exc: Exception, state: GatewayState) -> Exception:
    """The database failing on a request's path (a budget hold, say) is a 503 naming it,
    counted in the key store's outage (logged per transition), never a 500 and a log line."""
    keys = state.services.keys
    if keys is None or not is_store_error(exc):
        return exc
    keys.outage.failed(exc)
    retry = keys.outage.refuse()
    return GatewayError(
        503,
        f"the gateway's database is unavailable; retry in {retry}s",
        type_="server_error",
        code="database_unavailable",
        headers={"retry-after": str(retry)},
    )


async def _plain(scope: Scope, send: Send, gateway: Gateway, handler: PlainHandler) -> None:
    try:
        await _authorize(scope, gateway.state, None)
        await handler(send, gateway)
    except Exception as exc:  # as in app(): every error becomes an HTTP answer
        await _answer_error(scope, send, exc, None)


async def _answer_error(
    scope: Scope, send: Send, exc: Exception, ctx: RequestContext | None
) -> None:
    shape = anthropic_error if anthropic_shaped(scope) else openai_error
    status, body, headers = shape(exc)
    extra = list(headers.items())
    if ctx is not None:
        code = exc.code if isinstance(exc, GatewayError) else None
        ctx.fail(exc, status, code)
        extra += ctx.headers()
    # A refusal while the shared state is down is counted and logged once per outage.
    if status >= 500 and not isinstance(exc, GatewayError | SharedStateUnavailableError):
        request_id = ctx.request_id if ctx is not None else "-"
        log.warning("request %s failed: %s: %s", request_id, type(exc).__name__, exc)
    await send_json(send, status, body, extra)


async def _lifespan(receive: Receive, send: Send, gateway: Gateway) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await gateway.startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await gateway.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
