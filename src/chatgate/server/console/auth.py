"""Who a console session is, for the gateway's authorization: ``authorize_session`` is the
one function the app calls when a request presents no key.

A session is the master key's (admin) or an admin virtual key's (a key whose metadata has
``"role": "admin"``); the key is looked up on every use, so revoking it, its expiry or taking
its role away ends its sessions at once. Every change (any method but GET/HEAD) must carry
the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import time
from http.cookies import CookieError, SimpleCookie

from chatgate.server.asgi import Scope, header
from chatgate.server.console.sessions import SessionStore, csrf_token, master_subject
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.keys import KeyRecord
from chatgate.server.middleware.auth import as_admin, as_key
from chatgate.server.state import GatewayState

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "authorize_session",
    "console_session",
    "is_admin_key",
    "key_usable",
    "session_cookie",
    "session_store",
]

COOKIE = "chatgate_session"
CSRF_HEADER = b"x-csrf-token"
_SAFE = frozenset({"GET", "HEAD"})


def is_admin_key(record: KeyRecord) -> bool:
    return record.is_admin


def key_usable(record: KeyRecord | None, now: float) -> bool:
    return (
        record is not None
        and record.revoked_at is None
        and (record.expires_at is None or record.expires_at > now)
    )


def session_cookie(scope: Scope) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def session_store(state: GatewayState) -> SessionStore:
    engine = state.services.engine
    if engine is None:
        raise GatewayError(503, "the gateway's database is not open yet", type_="server_error")
    return SessionStore(engine)


def _refused(message: str, code: str, status: int = 401) -> GatewayError:
    type_ = "authentication_error" if status == 401 else "permission_error"
    return GatewayError(status, message, type_=type_, code=code)


async def authorize_session(
    scope: Scope, state: GatewayState, ctx: RequestContext | None, now: float
) -> bool:
    """True when the request carries a live console session (and, for a change, its CSRF
    token): ``ctx`` is then the master key's or the admin key's. False when it carries no
    session cookie; a cookie that names no live session, or a missing or wrong CSRF token,
    is refused with the reason."""
    session_id = session_cookie(scope)
    if session_id is None:
        return False
    session = await session_store(state).get(session_id)
    if session is None:
        raise _refused("the console session has ended; sign in again", "session_expired")
    if scope["method"] not in _SAFE:
        sent = header(scope, CSRF_HEADER) or ""
        if not hmac.compare_digest(sent.encode(), csrf_token(session_id).encode()):
            raise _refused(
                "missing or wrong X-CSRF-Token: a change from the console must send the "
                "token GET /ui/session gives",
                "csrf_failed",
                403,
            )
    master = state.master_key
    if master is not None and hmac.compare_digest(session.subject, master_subject(master)):
        if ctx is not None:
            as_admin(ctx)
        return True
    kind, _, key_id = session.subject.partition(":")
    keys = state.services.keys
    record = await keys.get(key_id) if kind == "key" and keys is not None else None
    if record is None or not key_usable(record, now) or not is_admin_key(record):
        raise _refused("the console session has ended; sign in again", "session_expired")
    if ctx is None:  # probes and /admin/reload: the master key only
        raise _refused("this route needs the master key", "admin_only", 403)
    as_key(ctx, record)
    as_admin(ctx)
    return True


async def console_session(
    scope: Scope, presented: str | None, state: GatewayState, ctx: RequestContext | None
) -> bool:
    """The auth method (server/middleware/auth.py) of a request that came with the console's
    session cookie and no key."""
    if presented is not None:
        return False
    return await authorize_session(scope, state, ctx, time.time())
