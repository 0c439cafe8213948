"""AuthMiddleware takes more auth methods as plain functions (as a console session would be),
tried after none of the others recognised the credentials; admin-only paths need what one of
them grants."""

from __future__ import annotations

import pytest

from chatgate.config import Config
from chatgate.server.asgi import Message, Receive, Scope, Send
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.middleware.auth import AuthMiddleware, as_admin, master_key, virtual_key
from chatgate.server.request import CTX, STATE
from chatgate.server.services import Services
from chatgate.server.state import GatewayState

MASTER = "sk-master-auth-unit"


async def session(
    scope: Scope, presented: str | None, state: GatewayState, ctx: RequestContext | None
) -> bool:
    if (b"cookie", b"session=good") not in scope["headers"]:
        return False
    if ctx is not None:
        as_admin(ctx)
    return True


async def reached(scope: Scope, receive: Receive, send: Send) -> None:
    scope["reached"] = True


async def call(app: AuthMiddleware, path: str, *headers: tuple[bytes, bytes]) -> Scope:
    config = Config.model_validate(
        {
            "model_list": [{"model_name": "m", "params": {"model": "openai/x", "api_key": "k"}}],
            "general_settings": {"master_key": MASTER},
        }
    )
    scope: Scope = {"type": "http", "method": "GET", "path": path, "headers": list(headers)}
    scope[STATE] = GatewayState.build(config, Services(), zero_config=False)
    scope[CTX] = RequestContext(route=path)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError("the middleware answers nothing itself")

    await app(scope, receive, send)
    return scope


async def test_an_added_method_authenticates_and_grants_admin() -> None:
    app = AuthMiddleware(
        reached, methods=(master_key, virtual_key, session), admin_prefixes=("/admin/",)
    )
    scope = await call(app, "/admin/keys", (b"cookie", b"session=good"))
    assert scope["reached"]
    assert scope[CTX].admin
    with pytest.raises(GatewayError) as refused:
        await call(app, "/admin/keys", (b"cookie", b"session=bad"))
    assert (refused.value.status, refused.value.code) == (401, "missing_api_key")


async def test_without_it_the_same_request_is_refused() -> None:
    app = AuthMiddleware(reached, admin_prefixes=("/admin/",))
    with pytest.raises(GatewayError) as refused:
        await call(app, "/admin/keys", (b"cookie", b"session=good"))
    assert refused.value.status == 401
    scope = await call(app, "/admin/keys", (b"authorization", f"Bearer {MASTER}".encode()))
    assert scope["reached"]
    assert scope[CTX].admin
