"""Exact prompt counts from the provider itself: Anthropic ``POST /v1/messages/count_tokens``
and Gemini ``models/{model}:countTokens``. Opt-in (``count_tokens(..., use_api=True)``): it is
a network call, free of charge at both providers but rate limited.

The requests are built by pure functions in each adapter (``providers/*/count.py``); this
module only sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chatgate.chat_request import chat_request
from chatgate.errors import APIError, InvalidRequestError
from chatgate.providers.anthropic import count as anthropic_count
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.gemini import count as gemini_count
from chatgate.providers.registry import get_adapter, prepare_deployment, resolve_deployment
from chatgate.redact import scrub_error
from chatgate.transport import http
from chatgate.transport.http import Timeouts
from chatgate.types import ChatRequest

__all__ = ["COUNT_ENDPOINTS", "count_via_api", "count_with"]

_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=60.0)

CountRequest = Callable[[ChatRequest, Deployment], HttpRequest]
# provider -> (its count request, its count parser, the method name a TokenCount reports)
COUNT_ENDPOINTS: dict[str, tuple[CountRequest, Callable[[bytes], int], str]] = {
    "anthropic": (anthropic_count.count_request, anthropic_count.parse_count, "anthropic_api"),
    "gemini": (gemini_count.count_request, gemini_count.parse_count, "gemini_api"),
}


async def count_via_api(
    model: str,
    messages: Sequence[Any] | None,
    tools: Sequence[Any] | None,
    text: str | None,
    *,
    api_key: str | None,
    api_base: str | None,
) -> tuple[int, str]:
    """The provider's own count of the prompt, and the method name: ``(tokens, method)``."""
    deployment = resolve_deployment(model, api_key=api_key, api_base=api_base)
    if deployment.provider not in COUNT_ENDPOINTS:
        raise InvalidRequestError(
            f"provider {deployment.provider!r} has no token count endpoint; "
            "use count_tokens() without use_api for a local count",
            param="use_api",
        )
    turns = list(messages or ())
    if text:
        turns.append({"role": "user", "content": text})
    params: dict[str, Any] = {"tools": list(tools)} if tools else {}
    return await count_with(deployment, chat_request(deployment.model, turns, params))


async def count_with(deployment: Deployment, request: ChatRequest) -> tuple[int, str]:
    """The count endpoint of ``deployment`` (one of COUNT_ENDPOINTS' providers) for
    ``request``: ``(tokens, method)``."""
    build, parse, method = COUNT_ENDPOINTS[deployment.provider]
    deployment = await prepare_deployment(deployment)
    resp = await http.send(build(request, deployment), _TIMEOUTS)
    if resp.status >= 400:
        adapter = get_adapter(deployment.provider)
        error: APIError = adapter.map_error(resp.status, resp.headers, resp.body, deployment)
        error.provider, error.model = deployment.provider, deployment.model
        scrub_error(error, deployment)  # chatgate.redact: a provider error entering the core
        raise error
    return parse(resp.body), method
