"""POST /v1/embeddings in OpenAI's wire format, for OpenAI and OpenAI-compatible upstreams,
routed like chat (strategy, limits, retries, cooldowns, fallbacks, admission control).

``encoding_format: "base64"`` (what the openai SDK asks for by default) is passed through:
the upstream's base64 strings reach the client untouched."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from chatgate.cost.calc import price_of
from chatgate.cost.tokens import count_tokens
from chatgate.embedding_types import EmbeddingInput, EmbeddingResponse
from chatgate.embeddings import build_embedding
from chatgate.server.asgi import ClientDisconnected
from chatgate.server.errors import GatewayError
from chatgate.server.openai_routes import model_name, parse_json_body
from chatgate.server.relay import ClientWatch
from chatgate.server.request import GatewayRequest, failed
from chatgate.server.serving import (
    admit_model,
    allowed_groups,
    charge_hold,
    hold_amount,
    record_tries,
    settle_amount,
    take_key_limits,
    took_embedding,
    upstream_answered,
)
from chatgate.transport.offload import OFFLOAD_MIN_BYTES, off_loop

__all__ = ["embeddings"]


async def embeddings(request: GatewayRequest) -> None:
    watch = ClientWatch(request.scope, request.receive)
    try:
        response = await _serve(request, parse_json_body(request.body), watch)
    except ClientDisconnected as exc:
        failed(request.ctx, exc, 499)
        return
    finally:
        watch.stop()
    await request.answer(response.__pydantic_serializer__.to_json(response))


async def _serve(
    gateway_request: GatewayRequest, data: dict[str, Any], watch: ClientWatch
) -> EmbeddingResponse:
    state, ctx = gateway_request.state, gateway_request.ctx
    size = len(gateway_request.body)
    name = admit_model(gateway_request, model_name(data), stream=False)
    router = state.models.router
    if name in router.tiered:
        raise GatewayError(
            400,
            f"{name!r} is a tiered chat model; embeddings need a model_list name",
            param="model",
        )
    gateway_request.keep_content(data.get("input"))
    request = build_embedding(name, data)
    group = router.groups[name]
    if size < OFFLOAD_MIN_BYTES:
        tokens = _input_tokens(group[0].model, request.input)
    else:  # seconds of counting for a big input: off the event loop
        tokens = await off_loop(_input_tokens, group[0].model, request.input)
    await take_key_limits(gateway_request, lambda: tokens)
    allowed = allowed_groups(ctx)
    reachable = [d for g in router.reachable(name, allowed) for d in router.groups[g]]
    prices = [p.input for d in reachable if (p := price_of(d.deployment)) is not None]
    if prices:  # the dearest deployment that may serve, fallbacks included: it picks later
        await hold_amount(state, ctx, name, max(prices) * tokens)
    if watch.gone:  # gone before the call: nothing was spent
        await settle_amount(state, ctx, Decimal(0), 0)
        raise ClientDisconnected
    began = time.perf_counter()
    try:
        response = await watch.cancelling(
            router.aroute_embedding(request, tags=ctx.tags, allowed=allowed)
        )
    except (ClientDisconnected, asyncio.CancelledError):  # the upstream had the input
        await charge_hold(state, ctx)
        raise
    except BaseException as exc:
        record_tries(ctx, exc)
        await settle_amount(state, ctx, Decimal(0), 0)
        raise
    finally:
        upstream_answered(ctx, began)
    used = response.usage.total_tokens if response.usage else 0
    await settle_amount(state, ctx, response.meta.cost, used)
    took_embedding(ctx, response)
    return response


def _input_tokens(model: str, given: EmbeddingInput) -> int:
    items = [given] if isinstance(given, str) else given
    return sum(_tokens(model, item) for item in items)


def _tokens(model: str, item: str | int | list[int]) -> int:
    if isinstance(item, str):
        return count_tokens(model, text=item).tokens
    return len(item) if isinstance(item, list) else 1  # token ids count as they are
