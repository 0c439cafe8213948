"""POST /v1/responses: the OpenAI Responses API in and out (stateless), served from any backend
through the canonical Chat Completions types (chatgate.responses_api)."""

from __future__ import annotations

import time
from typing import Any

from chatgate.responses_api import ChunksToResponseEvents, chat_request_from_responses, encode
from chatgate.responses_api.request import echo_fields
from chatgate.responses_api.response import new_id, response_object
from chatgate.server.asgi import Receive, Scope, Send
from chatgate.server.context import RequestContext
from chatgate.server.errors import openai_error
from chatgate.server.openai_routes import model_name, parse_json_body
from chatgate.server.serving import respond
from chatgate.server.state import GatewayState
from chatgate.types import ChatResponse
from chatgate.wire_chunk import StreamItem, typed_chunk

__all__ = ["ResponsesFrames", "responses"]


class ResponsesFrames:
    def __init__(self, events: ChunksToResponseEvents) -> None:
        self._events = events

    def chunk(self, item: StreamItem) -> bytes:
        return encode(self._events.feed(typed_chunk(item)))

    def end(self) -> bytes:
        return encode(self._events.finish())

    def error(self, exc: BaseException) -> bytes:
        status, body, _ = openai_error(exc)
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        return encode(self._events.fail(body["error"]["message"], code))


async def responses(
    scope: Scope,
    receive: Receive,
    send_: Send,
    state: GatewayState,
    body: bytes,
    ctx: RequestContext,
) -> None:
    data = parse_json_body(body)
    name = model_name(data)
    state.models.resolve(name)  # an unknown model is a 404 before all else
    request = chat_request_from_responses(data, name)
    echo = echo_fields(data)
    if ctx.log_content:
        ctx.content_in = data.get("input")

    def whole(response: ChatResponse) -> dict[str, Any]:
        created = int(time.time())
        return response_object(response, echo, response_id=new_id("resp"), created_at=created)

    frames = ResponsesFrames(ChunksToResponseEvents(echo, model=name))
    await respond(scope, receive, send_, state, ctx, request, whole=whole, frames=frames)
