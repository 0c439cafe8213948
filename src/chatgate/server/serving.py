"""The one path every chat request takes, whatever wire format it came in: the key's model
allowlist and RPM/TPM limits, a budget hold for the worst case, the response cache, the
router; and, when the answer is over, the settlement (budget, key TPM) with what it cost.

Order matters: everything that can refuse a request (403, 429, 402) runs before anything
that costs money, and a refused request leaves no hold, no counter and no spend behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from chatgate.cost.budgets import Budget
from chatgate.cost.calc import cost_of, partial_usage, price_of
from chatgate.router.budgeting import routed_worst_case
from chatgate.router.call import estimate_tokens
from chatgate.router.fallbacks import Allowed
from chatgate.router.state import Limits
from chatgate.server.asgi import Receive, Scope, Send, send_json
from chatgate.server.context import RequestContext, tier_hints
from chatgate.server.errors import GatewayError
from chatgate.server.relay import Frames, relay
from chatgate.server.state import GatewayState
from chatgate.stream import ChatStream
from chatgate.types import ChatRequest, ChatResponse, Usage

__all__ = [
    "admit_model",
    "allowed_groups",
    "check_n",
    "hold_amount",
    "respond",
    "serve_chat",
    "settle",
    "settle_amount",
    "take_key_limits",
]


async def serve_chat(
    scope: Scope, state: GatewayState, ctx: RequestContext, request: ChatRequest
) -> ChatResponse | ChatStream:
    """Admit and route ``request`` (its ``model`` is the name the client asked for)."""
    name = admit_model(state, ctx, request.model, stream=bool(request.stream))
    request.model = name
    check_n(state, request)
    services = state.services
    await take_key_limits(state, ctx, lambda: estimate_tokens(request))
    await _hold_budget(state, ctx, request)
    began = time.perf_counter()
    try:
        result = await _route(scope, state, ctx, request)
    except BaseException:
        await settle(state, ctx, None, request)  # nothing was spent: release the hold
        raise
    ctx.upstream_answered(began)
    if isinstance(result, ChatStream):
        if result.deployment is not None:
            ctx.deployment = f"{result.deployment.provider}/{result.deployment.model}"
        ctx.attempts = result.attempts
    if services.cache is not None:
        from chatgate.cache import cache_status

        ctx.cache_status = cache_status(result)
    return result


async def respond(
    scope: Scope,
    receive: Receive,
    send: Send,
    state: GatewayState,
    ctx: RequestContext,
    request: ChatRequest,
    *,
    whole: Callable[[ChatResponse], Any],
    frames: Frames,
) -> None:
    """Serve ``request`` and answer in the route's wire format: ``whole`` renders a complete
    answer as the JSON body, ``frames`` write a stream. Settled either way."""
    result = await serve_chat(scope, state, ctx, request)
    if isinstance(result, ChatResponse):
        await settle(state, ctx, result, request)
        ctx.take_response(result)
        ctx.status = 200
        await send_json(send, 200, whole(result), ctx.headers())
        return
    try:
        await relay(result, receive, send, ctx, frames)
    finally:
        await settle(state, ctx, result, request)


async def _route(
    scope: Scope, state: GatewayState, ctx: RequestContext, request: ChatRequest
) -> ChatResponse | ChatStream:
    router = state.models.router
    tier = tier_hints(scope, ctx) if request.model in router.tiered else None

    async def call() -> ChatResponse | ChatStream:
        return await router.aroute(request, tags=ctx.tags, allowed=allowed_groups(ctx), tier=tier)

    cache = state.services.cache
    if cache is None:
        return await call()
    from chatgate.cache import control_from_headers

    control = control_from_headers(scope["headers"])
    return await cache.get_or_call(request, request.model, call, control=control)


def admit_model(state: GatewayState, ctx: RequestContext, name: str, *, stream: bool) -> str:
    """The model_list name to serve (404 if none), if the key may use it (403)."""
    name = state.models.resolve(name)
    ctx.served_by(name, state.models.label(name), stream=stream)
    key = ctx.key
    if key is not None and not key.allows(name):
        raise GatewayError(
            403,
            f"this key may not use model {name!r}; it may use: {', '.join(key.models)}",
            type_="permission_error",
            param="model",
            code="model_not_allowed",
        )
    return name


async def take_key_limits(
    state: GatewayState, ctx: RequestContext, count: Callable[[], int]
) -> None:
    """Take one request (and the estimated tokens) from the key's RPM/TPM buckets, or 429."""
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


async def hold_amount(
    state: GatewayState, ctx: RequestContext, model: str, amount: Decimal
) -> None:
    """Hold a known amount (embeddings) on every budget that applies."""
    extra = key_budget(ctx)
    who = {"key": ctx.key_id, "user": ctx.user_id, "team": ctx.team_id}
    budgets = state.services.budgets
    if budgets.lines_for(model=model, extra=extra, **who):
        ctx.hold = await budgets.reserve_amount(amount, model=model, extra=extra, **who)


def allowed_groups(ctx: RequestContext) -> Allowed | None:
    """The model groups the caller may be served by, fallbacks included (None: any)."""
    key = ctx.key
    return key.allows if key is not None and key.models else None


def check_n(state: GatewayState, request: ChatRequest) -> None:
    """Refuse more choices than ``general_settings.max_n`` (each may cost a whole answer)."""
    ceiling = state.config.general_settings.max_n
    if request.n is not None and request.n > ceiling:
        raise GatewayError(
            400,
            f"n={request.n} is more choices than this gateway allows (max_n={ceiling}): "
            f"ask for at most {ceiling}, or send several requests",
            param="n",
            code="n_too_large",
        )


async def _hold_budget(state: GatewayState, ctx: RequestContext, request: ChatRequest) -> None:
    budgets = state.services.budgets
    extra = key_budget(ctx)
    who = {"key": ctx.key_id, "user": ctx.user_id, "team": ctx.team_id}
    if not budgets.lines_for(model=request.model, extra=extra, **who):
        return
    # The router picks after the hold is taken: hold the worst case over every deployment the
    # call may reach, fallbacks the key may use included, n choices each.
    router = state.models.router
    amount = routed_worst_case(router, budgets, request, allowed_groups(ctx))
    ctx.hold = await budgets.reserve_amount(amount, model=request.model, extra=extra, **who)


async def settle(
    state: GatewayState,
    ctx: RequestContext,
    result: ChatResponse | ChatStream | None,
    request: ChatRequest,
) -> None:
    """The answer is over (or never came): charge what it cost, free what was held."""
    cost: Decimal | None = Decimal(0)
    usage_total = 0
    if isinstance(result, ChatResponse):
        cost = result.meta.cost
        usage_total = result.usage.total_tokens if result.usage else 0
    elif isinstance(result, ChatStream):
        cost, usage = _stream_cost(result, request)
        usage_total = usage.total_tokens if usage is not None else 0
        if ctx.usage is None:  # cut short: what was produced, counted here
            ctx.usage = usage
        ctx.cost = cost if ctx.cost is None else ctx.cost
    await settle_amount(state, ctx, cost, usage_total)


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


def _stream_cost(stream: ChatStream, request: ChatRequest) -> tuple[Decimal | None, Usage | None]:
    """A finished stream's cost, or for one cut short what the tokens produced so far cost
    (counted here when the provider sent no usage)."""
    answer = stream.snapshot()
    if answer.meta.cost is not None or answer.meta.cache_hit:
        return answer.meta.cost, answer.usage
    deployment = stream.deployment
    if deployment is None:
        return None, answer.usage
    usage = partial_usage(f"{deployment.provider}/{deployment.model}", request.messages, answer)
    price = price_of(deployment, answer.model)
    return (None if price is None else cost_of(usage, price)), usage
