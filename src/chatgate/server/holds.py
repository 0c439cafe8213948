"""What a request takes from those who pay for it before its call — one request and its
estimated tokens from the key's RPM/TPM buckets, a budget hold for the worst case on every
budget that applies (its key, user, team and tags) — and gives back once the answer's cost is
known. ``serving`` decides when; this module owns the two context fields involved
(``hold``, ``key_tokens``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from chatgate.cost.budgets import Budget
from chatgate.router import guarded
from chatgate.router.fallbacks import Allowed
from chatgate.router.guarded import Payer
from chatgate.router.state import Limits
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.request import GatewayRequest
from chatgate.server.request_tags import charged
from chatgate.server.state import GatewayState
from chatgate.types import ChatRequest

__all__ = [
    "allowed_groups",
    "hold_amount",
    "hold_budget",
    "key_budget",
    "payer_of",
    "settle_amount",
    "take_key_limits",
]


async def take_key_limits(request: GatewayRequest, count: Callable[[], int]) -> None:
    """Take one request (and the estimated tokens) from the key's RPM/TPM buckets, or 429."""
    state, ctx = request.state, request.ctx
    key = ctx.key
    if key is None or not (key.rpm or key.tpm):
        return
    tokens = count() if key.tpm else 0
    limits = Limits(rpm=key.rpm, tpm=key.tpm)
    key_limits = state.services.key_limits
    wait = await key_limits.reserve(key.key_id, limits, tokens, time.monotonic())
    if wait > 0:
        seconds = max(1, round(wait))
        which = f"{key.rpm} requests/min" if key.rpm else f"{key.tpm} tokens/min"
        raise GatewayError(
            429,
            f"rate limit of this key reached ({which}); retry in {seconds}s",
            type_="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": str(seconds)},
        )
    ctx.key_tokens = tokens


def key_budget(ctx: RequestContext) -> tuple[Budget, ...]:
    key = ctx.key
    if key is None or key.budget_usd is None:
        return ()
    return (Budget("key", key.budget_usd, key.budget_period or "monthly", subject=key.key_id),)


def payer_of(ctx: RequestContext) -> Payer:
    """Whom the request's budgets are looked up for: its key, user, team and tags (its key's
    included), and the key's own budget."""
    return Payer(ctx.key_id, ctx.user_id, ctx.team_id, key_budget(ctx), charged(ctx.key, ctx.tags))


def allowed_groups(ctx: RequestContext) -> Allowed | None:
    """The model groups the caller may be served by, fallbacks included (None: any)."""
    key = ctx.key
    return key.allows if key is not None and key.models else None


async def hold_amount(
    state: GatewayState, ctx: RequestContext, model: str, amount: Decimal
) -> None:
    """Hold a known amount (embeddings) on every budget that applies."""
    hold = await guarded.hold_amount(state.services.budgets, model, amount, payer_of(ctx))
    if hold is not None:
        ctx.hold = hold


async def hold_budget(state: GatewayState, ctx: RequestContext, request: ChatRequest) -> None:
    """Hold the worst case of ``request`` over every group it may reach (402 if over)."""
    router, budgets = state.models.router, state.services.budgets
    hold = await guarded.hold_chat(budgets, router, request, payer_of(ctx), allowed_groups(ctx))
    if hold is not None:
        ctx.hold = hold


async def settle_amount(
    state: GatewayState, ctx: RequestContext, cost: Decimal | None, usage_total: int
) -> None:
    """Charge ``cost`` against the hold (None: the cost is unknown, the hold is charged) and
    correct the key's TPM bucket by the tokens actually used."""
    hold, ctx.hold = ctx.hold, None
    if hold is not None:
        await state.services.budgets.settle(hold, cost)
    key = ctx.key
    if key is not None and (key.rpm or key.tpm) and ctx.key_tokens is not None:
        correction = usage_total - ctx.key_tokens if usage_total else 0
        limits = Limits(rpm=key.rpm, tpm=key.tpm)
        key_limits = state.services.key_limits
        await key_limits.release(key.key_id, limits, correction, time.monotonic())
        ctx.key_tokens = None
