"""POST /v1/embeddings in OpenAI's wire format, for OpenAI and OpenAI-compatible upstreams.

``encoding_format: "base64"`` (what the openai SDK asks for by default) is passed through:
the upstream's base64 strings reach the client untouched."""

from __future__ import annotations

import time

from chatgate.embeddings import build_embedding, send_embedding
from chatgate.server.asgi import Receive, Scope, Send, send_json
from chatgate.server.context import RequestContext
from chatgate.server.openai_routes import model_name, parse_json_body
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
    name = model_name(data)
    target = state.models.resolve(name)
    ctx.served_by(name, target.label)
    if ctx.log_content:
        ctx.content_in = data.get("input")
    request = build_embedding(target.deployment.model, data)
    began = time.perf_counter()
    response = await send_embedding(request, target.deployment, timeouts=target.timeouts)
    ctx.upstream_answered(began)
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
