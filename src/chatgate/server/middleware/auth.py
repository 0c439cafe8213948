"""AuthMiddleware: who is calling. Each auth method is a function tried in turn; the first that
recognises the credentials decides (it returns True, or raises GatewayError to refuse). None
recognising them is fine on an open gateway (no master key: loopback by default) and a 401
otherwise. A presented ``sk-cg-`` key is always checked, so its limits and budget apply and a
revoked key is refused even on an open gateway.

Public paths need nothing (``/metrics`` a key when ``metrics_require_key``). Admin-only paths
need the master key. Probes, scrapes and ``/admin/reload`` carry no RequestContext: on those
only the master key counts, a virtual key is refused (403).

An auth method is ``async (scope, presented, state, ctx) -> bool``: ``presented`` is the key
from ``Authorization: Bearer`` or ``x-api-key`` (None without one); ``ctx`` is None on the
routes without a context. The methods write the caller's fields of the context (admin, key,
key_id, user_id, team_id) through ``as_admin`` and ``as_key``: this module is their one
writer.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Container, Sequence

from chatgate.server.asgi import ASGIApp, Receive, Scope, Send, header
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.keys import PREFIX, KeyRecord, KeyRejected, KeyStoreUnavailable
from chatgate.server.request import CTX, STATE
from chatgate.server.state import GatewayState
from chatgate.telemetry import steps

__all__ = [
    "AuthMethod",
    "AuthMiddleware",
    "as_admin",
    "as_key",
    "master_key",
    "presented_key",
    "virtual_key",
]

AuthMethod = Callable[[Scope, str | None, GatewayState, RequestContext | None], Awaitable[bool]]


def presented_key(scope: Scope) -> str | None:
    auth = header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return header(scope, b"x-api-key")


def as_admin(ctx: RequestContext) -> None:
    """The caller holds the master key (or an auth method's equivalent: a console session)."""
    ctx.admin = True


def as_key(ctx: RequestContext, key: KeyRecord) -> None:
    """The caller came with virtual key ``key``: its limits, budget and owners apply."""
    ctx.key = key
    ctx.key_id = key.key_id
    ctx.user_id = key.user
    ctx.team_id = key.team


async def master_key(
    scope: Scope, presented: str | None, state: GatewayState, ctx: RequestContext | None
) -> bool:
    master = state.master_key
    if presented and master and hmac.compare_digest(presented.encode(), master.encode()):
        if ctx is not None:
            as_admin(ctx)
        return True
    return False


async def virtual_key(
    scope: Scope, presented: str | None, state: GatewayState, ctx: RequestContext | None
) -> bool:
    keys = state.services.keys
    if not presented or not presented.startswith(PREFIX) or keys is None:
        return False
    try:
        with steps.step("chatgate.auth"):  # the key lookup: a master key costs nothing
            record = await keys.authenticate(presented)
    except KeyRejected as exc:
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
    as_key(ctx, record)
    if record.is_admin:  # metadata {"role": "admin"}: the console's and the admin API's
        as_admin(ctx)
    return True


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        methods: Sequence[AuthMethod] = (master_key, virtual_key),
        public: Container[str] = (),
        admin_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self._methods = tuple(methods)
        self._public = public
        self._admin_prefixes = admin_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.check(scope)
        await self.app(scope, receive, send)

    async def check(self, scope: Scope) -> None:
        """Who is calling, written into the request's context; GatewayError to refuse."""
        path = scope["path"]
        state: GatewayState = scope[STATE]
        if path in self._public and (
            path != "/metrics" or not state.config.general_settings.metrics_require_key
        ):
            return
        ctx: RequestContext | None = scope.get(CTX)
        presented = presented_key(scope)
        for method in self._methods:
            if await method(scope, presented, state, ctx):
                break
        else:
            _anonymous(state, presented)
        if ctx is not None and path.startswith(self._admin_prefixes) and not ctx.admin:
            raise GatewayError(
                403 if ctx.key is not None or state.master_key is None else 401,
                "the admin API needs the master key (general_settings.master_key) or an admin key",
                type_="permission_error",
                code="admin_only",
            )


def _anonymous(state: GatewayState, presented: str | None) -> None:
    """No method recognised the credentials: fine on an open gateway, a 401 otherwise."""
    if state.master_key is None:
        return  # an open gateway (loopback by default): no key needed
    if presented is None:
        raise GatewayError(
            401,
            "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            type_="authentication_error",
            code="missing_api_key",
        )
    raise GatewayError(401, "invalid API key", type_="authentication_error", code="invalid_api_key")
