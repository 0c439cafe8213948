"""POST /v1/embeddings in OpenAI's wire format, for OpenAI and OpenAI-compatible upstreams,
routed like chat (strategy, limits, retries, cooldowns, fallbacks, admission control).

``encoding_format: "base64"`` (what the openai SDK asks for by default) is passed through:
the upstream's base64 strings reach the client untouched."""

from __future__ import annotations

import time
from decimal import Decimal

from chatgate.cost.calc import price_of
from chatgate.cost.tokens import count_tokens
from chatgate.embedding_types import EmbeddingInput
from chatgate.embeddings import build_embedding
from chatgate.server.asgi import Receive, Scope, Send, send_json
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.openai_routes import model_name, parse_json_body
from chatgate.server.serving import (
    admit_model,
    allowed_groups,
    hold_amount,
    settle_amount,
    take_key_limits,
)
from chatgate.server.state import GatewayState
from chatgate.types import Usage

__all__ = ["embeddings"]


async def embeddings(
    scope: Scope,
    receive: Receive,
    send_: Send,
    state: GatewayState,
    body: bytes,
    ctx: RequestContext,
) -> None:
    data = parse_json_body(body)
    name = admit_model(state, ctx, model_name(data), stream=False)
    router = state.models.router
    if name in router.tiered:
        raise GatewayError(
            400,
            f"{name!r} is a tiered chat model; embeddings need a model_list name",
            param="model",
        )
    if ctx.log_content:
        ctx.content_in = data.get("input")
    request = build_embedding(name, data)
    group = router.groups[name]
    tokens = _input_tokens(group[0].model, request.input)
    await take_key_limits(state, ctx, lambda: tokens)
    allowed = allowed_groups(ctx)
    reachable = [d for g in router.reachable(name, allowed) for d in router.groups[g]]
    prices = [p.input for d in reachable if (p := price_of(d.deployment)) is not None]
    if prices:  # the dearest deployment that may serve, fallbacks included: it picks later
        await hold_amount(state, ctx, name, max(prices) * tokens)
    began = time.perf_counter()
    try:
        response = await router.aroute_embedding(request, tags=ctx.tags, allowed=allowed)
    except BaseException:
        await settle_amount(state, ctx, Decimal(0), 0)
        raise
    finally:
        ctx.upstream_answered(began)
    used = response.usage.total_tokens if response.usage else 0
    await settle_amount(state, ctx, response.meta.cost, used)
    meta = response.meta
    ctx.deployment = f"{meta.provider}/{meta.model}"
    ctx.cost = meta.cost
    ctx.attempts = meta.attempts
    if response.usage is not None:
        tokens = response.usage.prompt_tokens
        ctx.usage = Usage(prompt_tokens=tokens, total_tokens=response.usage.total_tokens)
    payload = response.__pydantic_serializer__.to_json(response)
    ctx.status = 200
    await send_json(send_, 200, payload, ctx.headers())


def _input_tokens(model: str, given: EmbeddingInput) -> int:
    items = [given] if isinstance(given, str) else given
    return sum(_tokens(model, item) for item in items)


def _tokens(model: str, item: str | int | list[int]) -> int:
    if isinstance(item, str):
        return count_tokens(model, text=item).tokens
    return len(item) if isinstance(item, list) else 1  # token ids count as they are
