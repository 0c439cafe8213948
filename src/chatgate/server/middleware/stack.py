"""The three middleware as one ASGI callable: the same concerns, each still its own class and
file, called as plain methods (open the context, check the caller, answer an error, close the
record) around the route. Nested, every resume of a request's task passed through three more
coroutine frames; here it passes through one."""

from __future__ import annotations

from chatgate.server.asgi import Receive, Scope, Send
from chatgate.server.middleware.auth import AuthMiddleware
from chatgate.server.middleware.errors import ErrorMiddleware
from chatgate.server.middleware.usage import UsageMiddleware

__all__ = ["MiddlewareStack"]


class MiddlewareStack:
    """``usage(errors(auth(route)))`` in one frame; ``route`` is ``auth``'s app."""

    def __init__(self, usage: UsageMiddleware, errors: ErrorMiddleware, auth: AuthMiddleware):
        self._usage = usage
        self._errors = errors
        self._auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        usage = self._usage
        ctx = usage.open(scope)
        try:
            try:
                await self._auth.check(scope)
                await self._auth.app(scope, receive, send)
            except Exception as exc:  # ErrorMiddleware answers every one
                await self._errors.answer(scope, send, exc)
        finally:
            if ctx is not None:
                usage.close(ctx)
