"""POST /v1/messages: the Anthropic Messages API in and out, served from any backend through
the Anthropic adapter's reverse translation.

The body is validated whole first (``inbound``: a 400 naming the field, never a 500). Which
Anthropic-only fields reach the upstream depends on every deployment the call may reach, its
group and the groups it may fall back to: all Anthropic, they pass as they came (the client's
``anthropic-beta`` header too); otherwise ``reverse_params`` translates or drops them.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from chatgate.providers.anthropic.inbound import validate_messages_body
from chatgate.providers.anthropic.reverse import anthropic_message, translate_request
from chatgate.providers.anthropic.reverse_params import Backend
from chatgate.providers.anthropic.reverse_stream import ChunksToAnthropicEvents, encode
from chatgate.server.asgi import Scope
from chatgate.server.body_tags import take_metadata_tags
from chatgate.server.errors import openai_error
from chatgate.server.models_route import anthropic_client
from chatgate.server.openai_routes import parse_json_body
from chatgate.server.request import GatewayRequest
from chatgate.server.serving import respond
from chatgate.server.state import GatewayState
from chatgate.wire_chunk import StreamItem, typed_chunk

__all__ = ["anthropic_error", "anthropic_shaped", "backend_for", "messages"]

log = logging.getLogger("chatgate.server")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_error(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The same status and headers as the OpenAI routes, in Anthropic's error shape."""
    status, body, headers = openai_error(exc)
    kind = _ERROR_TYPES.get(status, "api_error")
    return (
        status,
        {"type": "error", "error": {"type": kind, "message": body["error"]["message"]}},
        headers,
    )


def anthropic_shaped(scope: Scope) -> bool:
    """Errors on this request in Anthropic's envelope: /v1/messages and everything under it,
    and the model list when an Anthropic client asks."""
    path: str = scope["path"]
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return True
    return path.startswith(("/v1/models", "/models")) and anthropic_client(scope)


def backend_for(state: GatewayState, name: str) -> Backend:
    """The deployments a call to group ``name`` may reach, fallback groups included."""
    router = state.models.router
    settings = router.settings
    rules = [*settings.fallbacks, *settings.context_window_fallbacks]
    rules += settings.content_policy_fallbacks
    tiered = router.tiered.get(name)
    start = tiered.tiers if tiered is not None else [name]  # a tiered name: every tier
    seen, todo = set(start), list(start)
    while todo:
        group = todo.pop()
        for rule in rules:
            for target in rule.get(group, ()):
                if target not in seen and target in router.groups:
                    seen.add(target)
                    todo.append(target)
    pairs = [
        (routed.deployment.provider, routed.deployment.model)
        for group in seen
        for routed in router.groups[group]
    ]
    return Backend.of(pairs)


class AnthropicFrames:
    def __init__(self, model: str) -> None:
        self._events = ChunksToAnthropicEvents(model=model)

    def chunk(self, item: StreamItem) -> bytes:
        return encode(self._events.feed(typed_chunk(item)))

    def end(self) -> bytes:
        return encode(self._events.finish())

    def error(self, exc: BaseException) -> bytes:
        _, body, _ = anthropic_error(exc)
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"


async def messages(request: GatewayRequest) -> None:
    data = parse_json_body(request.body)
    validate_messages_body(data)
    name = data["model"]
    state = request.state
    backend = backend_for(state, state.models.resolve(name))  # unknown: a 404 before all else
    tags = take_metadata_tags(data) if "metadata" in data else ()
    chat, dropped = translate_request(data, backend, request.header(b"anthropic-beta"))
    if dropped:
        log.debug(
            "request %s: dropped for %s: %s", request.ctx.request_id, name, ", ".join(dropped)
        )
    request.keep_content(data.get("messages"))
    frames = AnthropicFrames(name)
    await respond(request, chat, whole=anthropic_message, frames=frames, tags=tags)
