"""POST /v1/messages: the Anthropic Messages API in and out, served from any backend through
the Anthropic adapter's reverse translation."""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.providers.anthropic.reverse import anthropic_message, chat_request_from_anthropic
from chatgate.providers.anthropic.reverse_stream import ChunksToAnthropicEvents, encode
from chatgate.server.asgi import Receive, Scope, Send
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError, openai_error
from chatgate.server.openai_routes import parse_json_body
from chatgate.server.serving import respond
from chatgate.server.state import GatewayState
from chatgate.wire_chunk import StreamItem, typed_chunk

__all__ = ["anthropic_error", "messages"]

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


async def messages(
    scope: Scope,
    receive: Receive,
    send_: Send,
    state: GatewayState,
    body: bytes,
    ctx: RequestContext,
) -> None:
    data = parse_json_body(body)
    name = data.get("model")
    if not isinstance(name, str) or not name:
        raise GatewayError(400, "'model' is required", param="model")
    if not isinstance(data.get("max_tokens"), int):
        raise GatewayError(400, "'max_tokens' is required: an integer", param="max_tokens")
    state.models.resolve(name)  # an unknown model is a 404 before all else
    request = chat_request_from_anthropic(data)
    if ctx.log_content:
        ctx.content_in = data.get("messages")
    frames = AnthropicFrames(name)
    await respond(
        scope, receive, send_, state, ctx, request, whole=anthropic_message, frames=frames
    )
