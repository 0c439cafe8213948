"""A tiered call's hints from the request's headers: the override (``x-chatgate-tier``) and
the session (``x-chatgate-session``); the classifier's choice comes back through a listener
and is kept on the request's context for the response headers and the spend log."""

from __future__ import annotations

from chatgate.server.asgi import Scope
from chatgate.server.context import RequestContext
from chatgate.tiering.route import TierChoice, TierHints

__all__ = ["tier_hints"]

_MAX_SESSION_CHARS = 128


def tier_hints(scope: Scope, ctx: RequestContext) -> TierHints:
    """A tiered call's override (x-chatgate-tier) and session (x-chatgate-session) headers;
    the choice is kept on ``ctx`` for the response headers and the spend log."""
    tier = session = None
    for key, value in scope["headers"]:
        if key == b"x-chatgate-tier":
            tier = value.decode("latin-1").strip()
        elif key == b"x-chatgate-session":
            session = value.decode("latin-1")[:_MAX_SESSION_CHARS]

    def heard(choice: TierChoice) -> None:
        ctx.tier = choice

    return TierHints(tier=tier, session=session, on_choice=heard)
