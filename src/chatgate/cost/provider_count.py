"""Exact prompt counts from the provider itself: Anthropic ``POST /v1/messages/count_tokens``
and Gemini ``models/{model}:countTokens``. Opt-in (``count_tokens(..., use_api=True)``): it is
a network call, free of charge at both providers but rate limited.

The request is built by the provider's own adapter, exactly as the real call would be, and
then narrowed to what the count endpoint accepts, so the count matches what will be billed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from chatgate.cost.tokens import TokenCount
from chatgate.errors import APIError, InvalidRequestError
from chatgate.providers.base import HttpRequest
from chatgate.providers.registry import get_adapter, prepare_deployment, resolve_deployment
from chatgate.redact import scrub_error
from chatgate.transport import http
from chatgate.transport.http import Timeouts

__all__ = ["count_via_api"]

# The fields Anthropic's count_tokens takes; anything else (max_tokens, stream, ...) is refused.
_ANTHROPIC_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=60.0)


def _anthropic(req: HttpRequest) -> HttpRequest:
    body = orjson.loads(req.body)
    narrowed = {k: body[k] for k in _ANTHROPIC_FIELDS if k in body}
    return HttpRequest("POST", req.url + "/count_tokens", req.headers, orjson.dumps(narrowed))


def _gemini(req: HttpRequest, model: str) -> HttpRequest:
    body = orjson.loads(req.body)
    body.pop("generationConfig", None)
    url = req.url.replace(":generateContent", ":countTokens")
    wrapped = {"generateContentRequest": {"model": f"models/{model}", **body}}
    return HttpRequest("POST", url, req.headers, orjson.dumps(wrapped))


async def count_via_api(
    model: str,
    messages: Sequence[Any] | None,
    tools: Sequence[Any] | None,
    text: str | None,
    *,
    api_key: str | None,
    api_base: str | None,
) -> TokenCount:
    from chatgate.client import build_request  # client imports cost: import here, not at top

    deployment = await prepare_deployment(
        resolve_deployment(model, api_key=api_key, api_base=api_base)
    )
    if deployment.provider not in ("anthropic", "gemini"):
        raise InvalidRequestError(
            f"provider {deployment.provider!r} has no token count endpoint; "
            "use count_tokens() without use_api for a local count",
            param="use_api",
        )
    turns = list(messages or ())
    if text:
        turns.append({"role": "user", "content": text})
    params: dict[str, Any] = {"tools": list(tools)} if tools else {}
    request = build_request(deployment.model, turns, params)
    adapter = get_adapter(deployment.provider)
    built = adapter.build_request(request, deployment)
    if deployment.provider == "anthropic":
        call, field, method = _anthropic(built), "input_tokens", "anthropic_api"
    else:
        call, field = _gemini(built, deployment.model.removeprefix("models/")), "totalTokens"
        method = "gemini_api"
    resp = await http.send(call, _TIMEOUTS)
    if resp.status >= 400:
        error: APIError = adapter.map_error(resp.status, resp.headers, resp.body, deployment)
        error.provider, error.model = deployment.provider, deployment.model
        scrub_error(error, deployment)  # chatgate.redact: a provider error entering the core
        raise error
    data = orjson.loads(resp.body)
    return TokenCount(int(data.get(field, 0)), True, method)
