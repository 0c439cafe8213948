"""The console's own routes under ``/ui``: the page, its files, and the session.

GET    /ui                  the page (it signs in, then uses the admin API)
GET    /ui/assets/<v>/<f>   its scripts and styles (cached for a year; see assets.py)
POST   /ui/session          sign in: {"key": master key or an admin virtual key}; 5 wrong
                            keys a minute from one address, then 429 (sign_in_limit.py)
GET    /ui/session          who is signed in, and the CSRF token for changes
DELETE /ui/session          sign out (needs the CSRF token)
"""

from __future__ import annotations

import hmac
import time

from chatgate.server.asgi import Receive, Scope, Send, header, read_body, send_json
from chatgate.server.console.assets import ASSET_PREFIX, CSP, asset, page
from chatgate.server.console.auth import (
    COOKIE,
    authorize_session,
    is_admin_key,
    session_cookie,
    session_store,
)
from chatgate.server.console.sessions import SESSION_TTL_S, csrf_token, master_subject
from chatgate.server.console.sign_in_shared import sign_ins_for
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.keys import PREFIX, KeyRejected
from chatgate.server.openai_routes import parse_json_body
from chatgate.server.request import GatewayRequest
from chatgate.server.state import GatewayState

__all__ = ["UI_PATH", "console"]

UI_PATH = "/ui"
_SESSION = "/ui/session"


async def console(request: GatewayRequest) -> None:
    scope, receive, send, state, ctx = (
        request.scope,
        request.receive,
        request.send,
        request.state,
        request.ctx,
    )
    path, method = scope["path"], scope["method"]
    request.answered(200)
    if path in (UI_PATH, UI_PATH + "/") and method == "GET":
        await _send(send, 200, "text/html; charset=utf-8", page(), "no-cache")
    elif path.startswith(ASSET_PREFIX) and method == "GET":
        found = asset(path)
        if found is None:
            raise GatewayError(404, f"no console file {path}", code="not_found")
        await _send(send, 200, found[0], found[1], "public, max-age=31536000, immutable")
    elif path == _SESSION and method == "POST":
        await _sign_in(scope, receive, send, state)
    elif path == _SESSION and method == "GET":
        await _whoami(scope, send, state, ctx)
    elif path == _SESSION and method == "DELETE":
        await _sign_out(scope, send, state, ctx)
    else:
        raise GatewayError(404, f"no console route {method} {path}", code="not_found")


async def _send(send: Send, status: int, ctype: str, body: bytes, cache: str) -> None:
    headers = [
        (b"content-type", ctype.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", cache.encode()),
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _cookie(scope: Scope, value: str, max_age: int) -> tuple[str, str]:
    https = scope.get("scheme") == "https" or header(scope, b"x-forwarded-proto") == "https"
    secure = "; Secure" if https else ""
    return (
        "set-cookie",
        f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
    )


async def _sign_in(scope: Scope, receive: Receive, send: Send, state: GatewayState) -> None:
    # JSON only: a cross-site form cannot send it without a CORS preflight, which fails
    if not (header(scope, b"content-type") or "").startswith("application/json"):
        raise GatewayError(415, 'sign in with a JSON body: {"key": "..."}', param="key")
    body = parse_json_body(await read_body(receive, 16_384))
    secret = body.get("key")
    if not isinstance(secret, str) or not secret:
        raise GatewayError(400, "key: the master key or an admin key (sk-cg-...)", param="key")
    master = state.master_key
    if master is None:
        raise GatewayError(
            403,
            "the console needs general_settings.master_key to be set",
            type_="permission_error",
            code="admin_only",
        )
    address = _address(scope)
    limiter = sign_ins_for(state.services)
    # before the key is read: a refusal says nothing about it
    tried = await limiter.attempt(address)
    if hmac.compare_digest(secret.encode(), master.encode()):
        subject, who = master_subject(master), {"kind": "master", "name": "master key"}
    else:
        try:
            subject, who = await _admin_key(state, secret)
        except GatewayError as exc:
            if exc.status not in (401, 403):  # an outage, not a wrong key
                await limiter.withdraw(address, tried)
            raise
    await limiter.succeeded(address, tried)
    session_id, session = await session_store(state).open(subject)
    headers = [_cookie(scope, session_id, SESSION_TTL_S)]
    body_out = {**who, "csrf": csrf_token(session_id), "expires_at": session.expires_at}
    await send_json(send, 200, body_out, headers)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _admin_key(state: GatewayState, secret: str) -> tuple[str, dict[str, str]]:
    keys = state.services.keys
    if not secret.startswith(PREFIX) or keys is None:
        raise GatewayError(401, "invalid key", type_="authentication_error", code="invalid_key")
    try:
        record = await keys.authenticate(secret)
    except KeyRejected as exc:
        raise GatewayError(
            401, exc.message, type_="authentication_error", code=f"{exc.reason}_key"
        ) from None
    if not is_admin_key(record):
        raise GatewayError(
            403,
            f'{record.display} is not an admin key: give it metadata {{"role": "admin"}}',
            type_="permission_error",
            code="admin_only",
        )
    return f"key:{record.key_id}", {"kind": "key", "name": record.name or record.display}


async def _whoami(scope: Scope, send: Send, state: GatewayState, ctx: RequestContext) -> None:
    session_id = session_cookie(scope)
    if session_id is None or not await authorize_session(scope, state, ctx, time.time()):
        raise GatewayError(
            401, "not signed in", type_="authentication_error", code="missing_session"
        )
    who = (
        {"kind": "key", "name": ctx.key.name or ctx.key.display}
        if ctx.key
        else {
            "kind": "master",
            "name": "master key",
        }
    )
    await send_json(send, 200, {**who, "csrf": csrf_token(session_id)})


async def _sign_out(scope: Scope, send: Send, state: GatewayState, ctx: RequestContext) -> None:
    session_id = session_cookie(scope)
    if session_id is not None:
        await authorize_session(scope, state, ctx, time.time())  # the CSRF token is checked
        await session_store(state).close(session_id)
    await send_json(send, 200, {"signed_out": True}, [_cookie(scope, "", 0)])
