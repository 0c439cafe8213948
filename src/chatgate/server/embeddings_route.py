"""POST /v1/embeddings in OpenAI's wire format, for OpenAI and OpenAI-compatible upstreams.

``encoding_format: "base64"`` (what the openai SDK asks for by default) is passed through:
the upstream's base64 strings reach the client untouched."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from chatgate.cost.calc import price_of
from chatgate.cost.tokens import count_tokens
from chatgate.embeddings import build_embedding, send_embedding
from chatgate.server.asgi import Receive, Scope, Send, send_json
from chatgate.server.context import RequestContext
from chatgate.server.openai_routes import model_name, parse_json_body
from chatgate.server.serving import admit_model, hold_amount, settle_amount, take_key_limits
from chatgate.server.state import GatewayState
from chatgate.transport.http import DEFAULT_TIMEOUTS
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
    routed = state.models.router.groups[name][0]  # embeddings are not routed (yet): the first
    if ctx.log_content:
        ctx.content_in = data.get("input")
    request = build_embedding(routed.deployment.model, data)
    tokens = _input_tokens(routed.model, request.input)
    await take_key_limits(state, ctx, lambda: tokens)
    price = price_of(routed.deployment)
    if price is not None:
        await hold_amount(state, ctx, name, price.input * tokens)
    began = time.perf_counter()
    try:
        response = await send_embedding(
            request, routed.deployment, timeouts=routed.timeouts or DEFAULT_TIMEOUTS
        )
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


def _input_tokens(model: str, given: Any) -> int:
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list):
        return 0
    return sum(count_tokens(model, text=t).tokens if isinstance(t, str) else len(t) for t in texts)
