"""POST /v1/chat/completions in OpenAI's exact wire format, streamed or not."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from chatgate.client import build_request, open_stream, send
from chatgate.errors import ChatgateError
from chatgate.server.asgi import Receive, Scope, Send, send_json
from chatgate.server.errors import GatewayError, openai_error
from chatgate.server.relay import relay
from chatgate.server.state import GatewayState
from chatgate.types import ChatChunk

__all__ = ["OpenAIFrames", "chat_completions", "list_models", "parse_json_body"]

_DONE = b"data: [DONE]\n\n"


def parse_json_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(
            400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise GatewayError(400, "the body must be a JSON object")
    return data


def _model_name(data: dict[str, Any]) -> str:
    name = data.pop("model", None)
    if not isinstance(name, str) or not name:
        raise GatewayError(
            400, "'model' is required: the name of a model this gateway serves", param="model"
        )
    return name


async def chat_completions(
    scope: Scope, receive: Receive, send_: Send, state: GatewayState, body: bytes
) -> None:
    started = time.perf_counter()
    data = parse_json_body(body)
    target = state.models.resolve(_model_name(data))
    stream = bool(data.get("stream"))
    messages = data.pop("messages", None)
    request = build_request(target.deployment.model, messages, data)
    request_id = f"cg-{uuid.uuid4().hex[:24]}"
    headers = [("x-chatgate-request-id", request_id), ("x-chatgate-model", target.name)]
    if not stream:
        response = await send(request, target.deployment, timeouts=target.timeouts)
        overhead = (time.perf_counter() - started) * 1000.0 - response.meta.latency_ms
        headers += [
            ("x-chatgate-attempts", str(response.meta.attempts)),
            ("x-chatgate-overhead-ms", f"{overhead:.2f}"),
        ]
        payload = response.__pydantic_serializer__.to_json(response, exclude_unset=True)
        await send_json(send_, 200, payload, headers)
        return
    chat_stream = await open_stream(request, target.deployment, timeouts=target.timeouts)
    overhead = (time.perf_counter() - started) * 1000.0
    headers += [("x-chatgate-attempts", "1"), ("x-chatgate-overhead-ms", f"{overhead:.2f}")]
    await relay(chat_stream, receive, send_, headers, OpenAIFrames())


class OpenAIFrames:
    def chunk(self, chunk: ChatChunk) -> bytes:
        return (
            b"data: " + chunk.__pydantic_serializer__.to_json(chunk, exclude_unset=True) + b"\n\n"
        )

    def end(self) -> bytes:
        return _DONE

    def error(self, exc: ChatgateError) -> bytes:
        _, body, _ = openai_error(exc)
        return b"data: " + orjson.dumps(body) + b"\n\n"


async def list_models(scope: Scope, receive: Receive, send_: Send, state: GatewayState) -> None:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "chatgate"}
        for name in state.models.names
    ]
    await send_json(send_, 200, {"object": "list", "data": data})
