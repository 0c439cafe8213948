"""The gateway as one pure ASGI app: create_app(config) -> app.

The app is a stack of pure ASGI middleware, one per file (server/middleware/), around a router
that is a dict lookup on (method, path); MiddlewareStack calls the three as one frame:

    lifespan and the request's GatewayState (here)
      -> UsageMiddleware   the RequestContext, in-flight count, the usage record at the end
      -> ErrorMiddleware   every exception -> the route's error envelope
      -> AuthMiddleware    master key, virtual keys; public and admin-only paths
      -> route             a handler taking one GatewayRequest (server/request.py)

Probes and scrapes (``_PLAIN``) go through the same stack with no context: no usage record.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from chatgate.config import Config
from chatgate.server import tracing
from chatgate.server.admin import ADMIN_PREFIX, admin
from chatgate.server.anthropic_routes import messages
from chatgate.server.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    read_body,
    remember_parsed,
    send_json,
)
from chatgate.server.batch_routes import PREFIXES as BATCH_PREFIXES
from chatgate.server.batch_routes import batch_route
from chatgate.server.batch_routes import route_template as batch_route_template
from chatgate.server.console import UI_PATH, console, console_session
from chatgate.server.count_tokens_route import count_tokens_route
from chatgate.server.embeddings_route import embeddings
from chatgate.server.errors import GatewayError
from chatgate.server.gateway import WORKERS_ENV, Gateway, ReloadError
from chatgate.server.health import ReadinessCheck, run_checks
from chatgate.server.json_body import parse_in_pieces
from chatgate.server.metrics import CONTENT_TYPE_LATEST
from chatgate.server.middleware import (
    AuthMethod,
    AuthMiddleware,
    ErrorMiddleware,
    MiddlewareStack,
    UsageMiddleware,
)
from chatgate.server.middleware.auth import master_key, virtual_key
from chatgate.server.models_route import MODEL_PREFIXES, list_models, retrieve_model
from chatgate.server.openai_routes import chat_completions, parse_json_body
from chatgate.server.request import CTX, STATE, GatewayRequest
from chatgate.server.responses_route import responses
from chatgate.server.state import GatewayState
from chatgate.server.store_outage import is_data_refusal, is_store_error
from chatgate.transport.offload import OFFLOAD_MIN_BYTES, off_loop

__all__ = ["create_app"]

log = logging.getLogger("chatgate.server")

Handler = Callable[[GatewayRequest], Awaitable[None]]
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
_POST: dict[str, Handler] = {
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
_OPEN = frozenset({"/health/liveness", "/health/readiness", "/metrics"})


class _Public:
    """The paths that need no key: the probes, and the console's own routes under /ui (the
    page, its files, sign-in: each checks what it needs)."""

    def __contains__(self, path: object) -> bool:
        return path in _OPEN or (isinstance(path, str) and _is_console(path))


_PUBLIC = _Public()
_KNOWN = frozenset({*_GET, *_POST, *(path for _, path in _PLAIN)})
# Tried in order; the first that recognises the credentials decides (middleware/auth.py).
AUTH_METHODS: tuple[AuthMethod, ...] = (master_key, virtual_key, console_session)


def _route_label(path: str) -> str:
    """A bounded label for metrics and the log: never the raw path."""
    if path in _KNOWN:  # the usual request first
        return path
    if path.startswith(MODEL_PREFIXES):
        return "/v1/models/{id}"
    if path.startswith(BATCH_PREFIXES):
        return batch_route_template(path) or "other"
    if _is_console(path):
        return UI_PATH
    return "admin" if path.startswith(ADMIN_PREFIX) else "other"


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

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        ctx = scope.get(CTX)
        if ctx is None:  # probes, scrapes and /admin/reload
            await _PLAIN[scope["method"], scope["path"]](send, gateway)
            return
        request = GatewayRequest(scope, receive, send, scope[STATE], ctx)
        method, path = scope["method"], scope["path"]
        if method == "POST" and (body_handler := _POST.get(path)) is not None:
            limit = request.state.config.general_settings.max_request_bytes
            body = request.body = await read_body(receive, limit)
            if len(body) >= OFFLOAD_MIN_BYTES:  # ~1.5 ms a MiB: not on the event loop
                remember_parsed(body, await off_loop(_parse_big, body))
            await body_handler(request)
        elif _is_console(path):
            await console(request)
        elif path.startswith(ADMIN_PREFIX):
            await admin(request)
        elif method == "GET" and (handler := _GET.get(path)) is not None:
            await handler(request)
        elif method == "GET" and path.startswith(MODEL_PREFIXES):
            await retrieve_model(request)
        elif path.startswith(BATCH_PREFIXES):
            await batch_route(request)
        elif path in _KNOWN:
            raise GatewayError(405, f"{method} is not allowed on {path}")
        else:
            raise GatewayError(404, f"no route {method} {path}", code="not_found")

    auth = AuthMiddleware(
        route, methods=AUTH_METHODS, public=_PUBLIC, admin_prefixes=(ADMIN_PREFIX,)
    )
    errors = ErrorMiddleware(auth, database_down=_database_down)
    usage = UsageMiddleware(
        errors,
        pipeline=gateway.pipeline,
        in_flight=gateway.metrics.in_flight,
        route_of=_route_label,
        untracked=_PLAIN,
        on_end=None if gateway.telemetry is None else tracing.annotate,
    )
    stack: ASGIApp = MiddlewareStack(usage, errors, auth)  # the three as one frame
    if gateway.telemetry is not None:  # outermost but for the state: the request's span
        stack = tracing.TracingMiddleware(stack, _route_of, untraced=_OPEN)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[STATE] = gateway.state  # this request runs on this config, even across a reload
            await stack(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send, gateway)

    return app


def _route_of(path: str) -> str | None:
    """``http.route`` for a path: the template of a route we serve, else None."""
    if path in _KNOWN:
        return path
    if path.startswith(MODEL_PREFIXES):
        return "/v1/models/{id}"
    if path.startswith(BATCH_PREFIXES):
        return batch_route_template(path)
    return None


_UI_PREFIX = UI_PATH + "/"


def _is_console(path: str) -> bool:
    return path == UI_PATH or path.startswith(_UI_PREFIX)


def _database_down(exc: Exception, state: GatewayState) -> Exception:
    """The database failing on a request's path (a budget hold, say) is a 503 naming it,
    counted in the key store's outage (logged per transition), never a 500 and a log line."""
    if is_data_refusal(exc):
        # A value the database cannot hold or match (a NUL in an id in the path, say): this
        # request's, not an outage; the fields we know are checked before (key_fields, ...).
        return GatewayError(
            400,
            "the database refused a value in this request (a NUL character, or a value too "
            "long or out of range for it); check the path, query and body",
            code="invalid_value",
        )
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


def _parse_big(body: bytes) -> dict[str, Any]:
    """In pieces, so the interpreter lock is free between them; whole if it cannot split."""
    return parse_in_pieces(body) or parse_json_body(body)


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
