"""POST /v1/chat/completions in OpenAI's exact wire format, streamed or not."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import orjson

from chatgate.client import build_request, open_stream, send
from chatgate.errors import ChatgateError
from chatgate.server.asgi import Receive, Scope, Send, send_json, start_stream
from chatgate.server.errors import GatewayError, openai_error
from chatgate.server.state import GatewayState
from chatgate.stream import ChatStream

__all__ = ["chat_completions", "list_models", "parse_json_body"]

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
    await _relay(chat_stream, receive, send_, headers)


async def _relay(
    chat_stream: ChatStream, receive: Receive, send_: Send, headers: list[tuple[str, str]]
) -> None:
    """Forward chunks as they come; a client that goes away cancels the upstream at once."""

    async def pump() -> None:
        await start_stream(send_, headers)
        try:
            async for chunk in chat_stream:
                data = chunk.__pydantic_serializer__.to_json(chunk, exclude_unset=True)
                await send_(
                    {
                        "type": "http.response.body",
                        "body": b"data: " + data + b"\n\n",
                        "more_body": True,
                    }
                )
            tail = _DONE
        except ChatgateError as exc:  # mid-stream failure: an error event, then close
            _, error_body, _ = openai_error(exc)
            tail = b"data: " + orjson.dumps(error_body) + b"\n\n"
        await send_({"type": "http.response.body", "body": tail, "more_body": False})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pump_task = asyncio.ensure_future(pump())
    gone_task = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({pump_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone_task.cancel()
        if not pump_task.done():
            pump_task.cancel()
            chat_stream.close()
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task


async def list_models(scope: Scope, receive: Receive, send_: Send, state: GatewayState) -> None:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "chatgate"}
        for name in state.models.names
    ]
    await send_json(send_, 200, {"object": "list", "data": data})
