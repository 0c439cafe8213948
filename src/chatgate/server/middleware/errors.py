"""ErrorMiddleware: the one place every exception a request raises becomes an HTTP answer, in
the route's wire shape (Anthropic's envelope on /v1/messages and for an Anthropic client's
model list, OpenAI's everywhere else), with the request's ``x-chatgate-*`` headers.

A client that went away (or was too slow sending its body: ``READ_TIMEOUT``) gets no answer,
only its record: 499, or 408. The database failing on a request's path becomes a 503 naming
it (``database_down``), counted in the key store's outage, never a 500.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

from chatgate.errors import SharedStateUnavailableError
from chatgate.server.anthropic_routes import anthropic_error, anthropic_shaped
from chatgate.server.asgi import (
    READ_TIMEOUT,
    ASGIApp,
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    send_json,
)
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError, openai_error
from chatgate.server.request import CTX, STATE, failed, response_headers, timed_out
from chatgate.server.state import GatewayState

__all__ = ["ErrorMiddleware"]

log = logging.getLogger("chatgate.server")


class ErrorMiddleware:
    def __init__(
        self, app: ASGIApp, *, database_down: Callable[[Exception, GatewayState], Exception]
    ) -> None:
        self.app = app
        self._database_down = database_down

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            await self.answer(scope, send, exc)

    async def answer(self, scope: Scope, send: Send, exc: Exception) -> None:
        """What the client gets for ``exc`` (nothing, if it went away: only its record)."""
        if isinstance(exc, ClientDisconnected):
            ctx: RequestContext | None = scope.get(CTX)
            if ctx is not None:
                timeout = scope.get(READ_TIMEOUT)  # the server closed it: the client was slow
                if timeout:
                    timed_out(ctx, 408, f"{timeout}_timeout")
                else:
                    timed_out(ctx, 499, "ClientDisconnected")
        elif isinstance(exc, BodyTooLarge):
            limit = scope[STATE].config.general_settings.max_request_bytes
            too_large = GatewayError(413, f"the body is larger than {limit} bytes")
            await answer_error(scope, send, too_large)
        else:  # the one place every error becomes an HTTP answer
            if CTX in scope:  # probes and scrapes answer as they always did
                exc = self._database_down(exc, scope[STATE])
            await answer_error(scope, send, _disk_full(exc))


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _disk_full(exc: Exception) -> Exception:
    """A write the gateway's disk had no room for (a batch input, say) is a 507 saying so:
    nothing the client can fix, and no reason to take it for a bug."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return GatewayError(
            507,
            "the gateway's disk is full: nothing was stored; retry once an operator has freed "
            "space",
            type_="server_error",
            code="insufficient_storage",
        )
    return exc


async def answer_error(scope: Scope, send: Send, exc: Exception) -> None:
    shape = anthropic_error if anthropic_shaped(scope) else openai_error
    status, body, headers = shape(exc)
    extra = list(headers.items())
    ctx: RequestContext | None = scope.get(CTX)
    if ctx is not None:
        failed(ctx, exc, status, exc.code if isinstance(exc, GatewayError) else None)
        extra += response_headers(ctx)
    # A refusal while the shared state is down is counted and logged once per outage.
    if status >= 500 and not isinstance(exc, GatewayError | SharedStateUnavailableError):
        request_id = ctx.request_id if ctx is not None else "-"
        log.warning("request %s failed: %s: %s", request_id, type(exc).__name__, exc)
    await send_json(send, status, body, extra)
