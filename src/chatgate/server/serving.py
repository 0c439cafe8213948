"""The one path every chat request takes, whatever wire format it came in: the key's model
allowlist and RPM/TPM limits, a budget hold for the worst case, the response cache, the
router; and, when the answer is over, the settlement (budget, key TPM) with what it cost.

Order matters: everything that can refuse a request (403, 429, 402) runs before anything
that costs money, and a refused request leaves no hold, no counter and no spend behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from chatgate.cost.tokens import precount
from chatgate.embedding_types import EmbeddingResponse
from chatgate.errors import ChatgateError
from chatgate.meta import tries
from chatgate.router import guarded
from chatgate.router.call import estimate_tokens, prompt_bytes
from chatgate.server.asgi import ClientDisconnected, big_body
from chatgate.server.call_watch import cancel_when_gone, stop_watching
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.holds import (  # allowed_groups, key_budget, payer_of: exported here too
    allowed_groups,
    hold_budget,
    key_budget,
    payer_of,
    settle_amount,
    take_key_limits,
)
from chatgate.server.relay import ClientWatch, Frames, Relayed, relay
from chatgate.server.request import GatewayRequest, failed
from chatgate.server.request_tags import merge_tags
from chatgate.server.state import GatewayState
from chatgate.server.tier_hints import tier_hints
from chatgate.stream import ChatStream
from chatgate.transport.offload import OFFLOAD_MIN_BYTES
from chatgate.types import ChatRequest, ChatResponse, Usage

__all__ = [
    "add_body_tags",
    "admit_model",
    "allowed_groups",
    "charge_hold",
    "check_n",
    "free_call",
    "key_budget",
    "payer_of",
    "record_tries",
    "respond",
    "serve_chat",
    "served_by_failure",
    "settle",
    "take_response",
    "took_embedding",
    "upstream_answered",
]


async def serve_chat(
    request: GatewayRequest, chat: ChatRequest, watch: ClientWatch | None = None
) -> ChatResponse | ChatStream:
    """Admit and route ``chat`` (its ``model`` is the name the client asked for). With a
    ``watch``, the call is cancelled if the client goes (ClientDisconnected)."""
    state, ctx = request.state, request.ctx
    name = admit_model(request, chat.model, stream=bool(chat.stream))
    chat.model = name
    check_n(state, chat)
    if ctx.key is not None:  # (no coroutine for the usual case: nothing to take or hold)
        await take_key_limits(request, lambda: estimate_tokens(chat))
    if state.services.budgets.budgets or (ctx.key is not None and ctx.key.budget_usd is not None):
        await hold_budget(state, ctx, chat)
    if watch is not None and watch.gone:  # gone before the call: nothing was spent
        await settle(state, ctx, None, chat)
        raise ClientDisconnected
    began = time.perf_counter()
    # Cancelled by the watch directly, not through ClientWatch.cancelling: a coroutine frame
    # less for every resume of the call (each read of the upstream's answer).
    task = cancel_when_gone(watch)
    try:
        result = await _route(request, chat)
    except BaseException as exc:
        gone = stop_watching(watch, task, exc)
        if gone or isinstance(exc, ClientDisconnected | asyncio.CancelledError):
            await charge_hold(state, ctx)
            if gone:
                raise ClientDisconnected from None
            raise
        record_tries(ctx, exc)
        await settle(state, ctx, None, chat)  # nothing was spent: release the hold
        raise
    stop_watching(watch, task, None)
    upstream_answered(ctx, began)
    if isinstance(result, ChatStream):
        if result.deployment is not None:
            ctx.deployment = f"{result.deployment.provider}/{result.deployment.model}"
        ctx.deployment_id = result.deployment_id
        ctx.attempts = result.attempts
        ctx.tried = result.attempt_log  # filled in as the stream goes (a failure mid-way)
    if state.services.cache is not None:
        from chatgate.cache import cache_status

        ctx.cache_status = cache_status(result)
    return result


def add_body_tags(ctx: RequestContext, tags: tuple[str, ...]) -> None:
    """The body's own tags (``server.body_tags``), after the header's: the request carries
    them from now on (its spend row, its access-log line, its tag budgets)."""
    if tags:
        ctx.tags = merge_tags(ctx.tags, tags)


async def respond(
    request: GatewayRequest,
    chat: ChatRequest,
    *,
    whole: Callable[[ChatResponse], Any],
    frames: Frames,
    tags: tuple[str, ...] = (),
) -> None:
    """Serve ``chat`` and answer in the route's wire format: ``whole`` renders a complete
    answer as the JSON body, ``frames`` write a stream. Settled either way; a client that goes
    away cancels the call, whole or streamed (status 499, settled as docs/cost.md says).
    ``tags``: the body's own (``server.body_tags``), after the header's."""
    state, ctx = request.state, request.ctx
    if tags:  # most requests have none: no call
        add_body_tags(ctx, tags)
    if big_body():
        await _count_big_prompt(state, ctx, chat)
    watch = ClientWatch(request.scope, request.receive)
    try:
        result = await serve_chat(request, chat, watch)
        if isinstance(result, ChatResponse):
            await settle(state, ctx, result, chat)
            take_response(ctx, result)
            if watch.gone:  # gone once the answer came: it is paid for, never received
                raise ClientDisconnected
            await request.answer(whole(result))
            return
        try:
            relayed = await relay(result, watch, request, frames)
            _relayed(ctx, result, relayed)
        finally:
            await settle(state, ctx, result, chat)
    except ClientDisconnected as exc:
        failed(ctx, exc, 499)
    finally:
        watch.stop()


def _relayed(ctx: RequestContext, stream: ChatStream, relayed: Relayed) -> None:
    if relayed.ttft_ms is not None and ctx.ttft_ms is None:
        ctx.ttft_ms = relayed.ttft_ms
    if relayed.gone:
        failed(ctx, ClientDisconnected(), 499)
    elif relayed.complete:
        take_response(ctx, stream.final())
    else:
        ctx.usage = stream.usage  # what was produced before the failure, if the upstream said


def take_response(ctx: RequestContext, response: ChatResponse) -> None:
    """Usage, cost and outcome from a finished answer (non-stream, or a stream's final)."""
    meta = response.meta
    ctx.usage = response.usage
    ctx.cost = meta.cost
    ctx.cache_hit = meta.cache_hit
    ctx.attempts = max(ctx.attempts, meta.attempts)
    if meta.cache_hit:
        ctx.cache_cost = meta.cache_saved_cost
    elif len(meta.attempt_log) > 1:
        ctx.tried = meta.attempt_log
    if meta.model_name is not None:
        ctx.fallback = meta.model_name != ctx.requested_model
        ctx.served_group = meta.model_name
    ctx.finish_reason = response.finish_reason
    if meta.tier is not None:
        ctx.tier_saved = meta.tier_saved_cost
    if ctx.ttft_ms is None and meta.ttft_ms is not None:
        ctx.ttft_ms = meta.ttft_ms
    if meta.provider:
        ctx.deployment = f"{meta.provider}/{meta.model}"
    if meta.deployment is not None:
        ctx.deployment_id = meta.deployment
    if ctx.log_content:
        ctx.content_out = response.content


def served_by_failure(ctx: RequestContext, exc: ChatgateError) -> None:
    """Who was tried, for a call that failed outside a request (a batch line)."""
    ctx.deployment = f"{exc.provider}/{exc.model}" if exc.provider else None
    record_tries(ctx, exc)


def record_tries(ctx: RequestContext, exc: BaseException) -> None:
    """How many upstream attempts a Router made before giving up, and the last one's id."""
    tried = getattr(exc, "attempt_log", None)
    if tried:
        ctx.tried = tried
        ctx.attempts = max(ctx.attempts, tries(tried))
        last = next((a for a in reversed(tried) if a.skipped is None), None)
        if last is not None and ctx.deployment_id is None:
            ctx.deployment_id = last.deployment  # the spend log's deployment: the one that failed


def upstream_answered(ctx: RequestContext, began: float) -> None:
    ctx.upstream_s += time.perf_counter() - began


def free_call(ctx: RequestContext) -> None:
    """A call no provider bills (a token count): its spend-log row says so."""
    ctx.cost = Decimal(0)


def took_embedding(ctx: RequestContext, response: EmbeddingResponse, *, cached: bool) -> None:
    """What served an embeddings request and what it cost; ``cached``: a cache is configured
    (the answer says hit or miss)."""
    meta = response.meta
    ctx.deployment = f"{meta.provider}/{meta.model}"
    ctx.deployment_id = meta.deployment
    ctx.cost = meta.cost
    ctx.attempts = meta.attempts
    ctx.cache_hit = meta.cache_hit
    if meta.cache_hit:
        ctx.cache_cost = meta.cache_saved_cost
    if cached:
        ctx.cache_status = "hit" if meta.cache_hit else "miss"
    if response.usage is not None:
        tokens = response.usage.prompt_tokens
        ctx.usage = Usage(prompt_tokens=tokens, total_tokens=response.usage.total_tokens)


async def _count_big_prompt(state: GatewayState, ctx: RequestContext, request: ChatRequest) -> None:
    """A big prompt is counted once in a worker thread, for every encoding the call may be
    counted with (its group's and its fallbacks'), so that the budget hold and the router's
    context check find it counted: counting 15 MiB on the event loop stalled every other
    request for seconds. Small prompts keep counting on the loop, where it is cheaper; only a
    request whose body was big (parsed off the loop) is measured here."""
    if prompt_bytes(request) < OFFLOAD_MIN_BYTES:
        return
    key, groups = ctx.key, state.models.router.groups
    if request.model not in groups or (key is not None and not key.allows(request.model)):
        return  # refused before anything is counted
    names = {request.model}
    settings = state.config.router_settings
    for table in (
        settings.fallbacks,
        settings.context_window_fallbacks,
        settings.content_policy_fallbacks,
    ):
        for entry in table:
            for targets in entry.values():
                names.update(targets)
    models = [routed.model for name in names if name in groups for routed in groups[name]]
    await precount(models, request.messages, request.tools)


def _route(request: GatewayRequest, chat: ChatRequest) -> Awaitable[ChatResponse | ChatStream]:
    """The routed call as an awaitable, not a coroutine around it: without a cache it is the
    router's own (each resume of the call passes through two frames fewer)."""
    state, ctx = request.state, request.ctx
    router = state.models.router
    tier = tier_hints(request.scope, ctx) if chat.model in router.tiered else None

    def call() -> Awaitable[ChatResponse | ChatStream]:
        return router.aroute(
            chat,
            tags=ctx.tags,
            allowed=allowed_groups(ctx),
            tier=tier,
            auto_prompt_cache=ctx.key is not None
            and ctx.key.metadata.get("auto_prompt_cache") is True,
        )

    cache = state.services.cache
    if cache is None:
        return call()
    from chatgate.cache import control_from_headers

    control = control_from_headers(request.scope["headers"])
    return guarded.through_cache(cache, control, chat, call)


def admit_model(request: GatewayRequest, name: str, *, stream: bool) -> str:
    """The model_list name to serve (404 if none), if the key may use it (403)."""
    state, ctx = request.state, request.ctx
    name = state.models.resolve(name)
    ctx.requested_model = name
    ctx.deployment = state.models.label(name)
    ctx.stream = stream
    ctx.attempts = 1
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


async def settle(
    state: GatewayState,
    ctx: RequestContext,
    result: ChatResponse | ChatStream | None,
    request: ChatRequest,
) -> None:
    """The answer is over (or never came): charge what it cost, free what was held."""
    cost, usage = guarded.answer_cost(result, request)
    usage_total = usage.total_tokens if usage is not None else 0
    if isinstance(result, ChatStream):
        if ctx.usage is None:  # cut short: what was produced, counted here
            ctx.usage = usage
        ctx.cost = cost if ctx.cost is None else ctx.cost
    if ctx.hold is not None or ctx.key_tokens is not None:  # else nothing to settle
        await settle_amount(state, ctx, cost, usage_total)


async def charge_hold(state: GatewayState, ctx: RequestContext) -> None:
    """The call was cancelled before its answer came: the upstream may bill anything up to
    the hold and we will never learn what, so the hold is charged (docs/cost.md)."""
    ctx.cost = ctx.hold.amount_usd if ctx.hold is not None else None
    await settle_amount(state, ctx, None, 0)
