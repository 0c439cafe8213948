"""POST /v1/embeddings in OpenAI's wire format, for OpenAI and OpenAI-compatible upstreams,
routed like chat (strategy, limits, retries, cooldowns, fallbacks, admission control), and
through the response cache when one is configured (the same ``x-chatgate-cache-*`` request
headers as chat; identical requests in flight share one upstream call).

``encoding_format: "base64"`` (what the openai SDK asks for by default) is passed through:
the upstream's base64 strings reach the client untouched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

from chatgate.cache.embeddings import embed_through
from chatgate.cache.policy import control_from_headers
from chatgate.embedding_types import EmbeddingResponse
from chatgate.embeddings import build_embedding
from chatgate.router.budgeting import embedding_input_tokens, embedding_worst_case
from chatgate.router.guarded import served_by
from chatgate.server.asgi import ClientDisconnected
from chatgate.server.errors import GatewayError
from chatgate.server.holds import allowed_groups, hold_amount, settle_amount, take_key_limits
from chatgate.server.openai_routes import model_name, parse_json_body
from chatgate.server.relay import ClientWatch
from chatgate.server.request import GatewayRequest, failed
from chatgate.server.serving import (
    admit_model,
    charge_hold,
    record_tries,
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
        tokens = embedding_input_tokens(group[0].model, request.input)
    else:  # seconds of counting for a big input: off the event loop
        tokens = await off_loop(embedding_input_tokens, group[0].model, request.input)
    await take_key_limits(gateway_request, lambda: tokens)
    allowed = allowed_groups(ctx)
    amount = embedding_worst_case(router, request, allowed, tokens)
    if amount is not None:
        await hold_amount(state, ctx, name, amount)
    if watch.gone:  # gone before the call: nothing was spent
        await settle_amount(state, ctx, Decimal(0), 0)
        raise ClientDisconnected
    began = time.perf_counter()

    def route() -> Awaitable[EmbeddingResponse]:
        return router.aroute_embedding(request, tags=ctx.tags, allowed=allowed)

    cache = state.services.cache
    try:
        if cache is None:
            response = await watch.cancelling(route())
        else:
            control = control_from_headers(gateway_request.scope["headers"])
            where = served_by(router, name)
            response = await watch.cancelling(
                embed_through(cache, request, name, route, control=control, partition=where)
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
    took_embedding(ctx, response, cached=cache is not None)
    return response
