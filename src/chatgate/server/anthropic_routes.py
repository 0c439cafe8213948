"""POST /v1/messages: the Anthropic Messages API in and out, served from any backend through
the Anthropic adapter's reverse translation."""

from __future__ import annotations

import time
from typing import Any

import orjson

from chatgate.client import open_stream, send
from chatgate.providers.anthropic.reverse import anthropic_message, chat_request_from_anthropic
from chatgate.providers.anthropic.reverse_stream import ChunksToAnthropicEvents, encode
from chatgate.server.asgi import Receive, Scope, Send, send_json
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError, openai_error
from chatgate.server.openai_routes import parse_json_body
from chatgate.server.relay import relay
from chatgate.server.state import GatewayState
from chatgate.types import ChatChunk

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

    def chunk(self, chunk: ChatChunk) -> bytes:
        return encode(self._events.feed(chunk))

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
    target = state.models.resolve(name)
    request = chat_request_from_anthropic(data)
    request.model = target.deployment.model
    ctx.served_by(name, target.label, stream=bool(request.stream))
    if ctx.log_content:
        ctx.content_in = data.get("messages")
    began = time.perf_counter()
    if not request.stream:
        response = await send(request, target.deployment, timeouts=target.timeouts)
        ctx.upstream_answered(began)
        ctx.take_response(response)
        ctx.status = 200
        await send_json(send_, 200, anthropic_message(response), ctx.headers())
        return
    chat_stream = await open_stream(request, target.deployment, timeouts=target.timeouts)
    ctx.upstream_answered(began)
    await relay(chat_stream, receive, send_, ctx, AnthropicFrames(name))
