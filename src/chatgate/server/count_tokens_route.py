"""POST /v1/messages/count_tokens: Anthropic's token count, for any backend.

The backend's own count endpoint answers where it has one (Anthropic ``count_tokens``, Gemini
``countTokens``), for the first deployment of the model's group (the one a call tries first).
Any other backend, or one whose count endpoint fails, is counted here with that model's
tokenizer (tiktoken; an estimate for non-OpenAI models). The ``x-chatgate-token-count`` header
says which: ``exact`` or ``estimate``; ``x-chatgate-token-count-method`` says how.
"""

from __future__ import annotations

import asyncio
import logging

from chatgate.cost.provider_count import COUNT_ENDPOINTS, count_with
from chatgate.cost.tokens import TokenCount, count_tokens
from chatgate.errors import ChatgateError
from chatgate.providers.anthropic.inbound import COUNT_FIELDS, validate_count_body
from chatgate.providers.anthropic.reverse import chat_request_from_anthropic
from chatgate.providers.anthropic.reverse_params import Backend
from chatgate.providers.base import Deployment
from chatgate.server.openai_routes import parse_json_body
from chatgate.server.request import GatewayRequest
from chatgate.server.serving import admit_model, free_call
from chatgate.types import ChatRequest

__all__ = ["count_tokens_route"]

log = logging.getLogger("chatgate.server")

_THREAD_ABOVE = 64 * 1024  # bytes of body: a count this big leaves the event loop


async def _count(deployment: Deployment, request: ChatRequest, size: int) -> TokenCount:
    if deployment.provider in COUNT_ENDPOINTS:
        try:
            tokens, method = await count_with(deployment, request)
            return TokenCount(tokens, True, method)
        except ChatgateError as exc:  # the count is advisory: estimate rather than fail
            # the class and status only: an upstream's error text may echo the credential
            status = getattr(exc, "status_code", None)
            log.warning(
                "%s count endpoint failed (%s, status %s): estimating",
                deployment.provider,
                type(exc).__name__,
                status,
            )
    model = f"{deployment.provider}/{deployment.model}"
    if size > _THREAD_ABOVE:
        return await asyncio.to_thread(count_tokens, model, request.messages, request.tools)
    return count_tokens(model, request.messages, request.tools)


async def count_tokens_route(request: GatewayRequest) -> None:
    data = parse_json_body(request.body)
    validate_count_body(data)
    name = admit_model(request, data["model"], stream=False)
    router = request.state.models.router
    tiered = router.tiered.get(name)  # a tiered name counts as its cheapest tier
    deployment = router.groups[tiered.tiers[0] if tiered else name][0].deployment
    backend = Backend.of([(deployment.provider, deployment.model)])
    counted_fields = {k: v for k, v in data.items() if k in COUNT_FIELDS}
    chat = chat_request_from_anthropic({**counted_fields, "max_tokens": 1}, backend)
    counted = await _count(deployment, chat, len(request.body))
    free_call(request.ctx)  # free at every provider: its spend-log row says so
    extra = [
        ("x-chatgate-token-count", "exact" if counted.exact else "estimate"),
        ("x-chatgate-token-count-method", counted.method),
    ]
    await request.answer({"input_tokens": counted.tokens}, extra=extra)
