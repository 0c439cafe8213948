"""A fake Anthropic upstream: a real HTTP server on 127.0.0.1 speaking the Messages API wire
format exactly (POST /v1/messages, ``request-id`` header, named SSE events, error bodies),
scriptable per test and recording what it received.

The server, scripting and stream writing are ``tests.fakes.base``'s; only the routes and the
wire format are here. ``Reply.chunks`` holds event dicts, each sent as ``event: <type>`` +
``data: <json>``; strings are sent as raw bytes. With nothing scripted it echoes the last user
text, streamed when the request asks for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import LoopbackServer, Received, Reply, read_body

__all__ = [
    "FakeAnthropic",
    "Received",
    "Reply",
    "count_tokens_of",
    "error_body",
    "events_for",
    "fake_anthropic",
    "message_json",
    "sse",
    "usage_json",
]


def usage_json(
    input_tokens: int = 10,
    output_tokens: int = 5,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_1h: int | None = None,
) -> dict[str, Any]:
    """Anthropic's usage object; ``cache_write_1h`` adds the ``cache_creation`` split by TTL
    (that many of the ``cache_write`` tokens written for 1 hour, the rest for 5 minutes)."""
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "service_tier": "standard",
    }
    if cache_write_1h is not None:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
            "ephemeral_1h_input_tokens": cache_write_1h,
        }
    return usage


def message_json(
    content: list[dict[str, Any]] | str = "Hello!",
    *,
    model: str = "claude-sonnet-4-20250514",
    stop_reason: str = "end_turn",
    stop_sequence: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return {
        "id": "msg_fake123",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage or usage_json(),
    }


def error_body(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_x"}


def events_for(message: dict[str, Any], *, pieces: int = 3) -> list[dict[str, Any]]:
    """The events Anthropic streams for ``message``: each block's text, thinking or tool input
    cut into ``pieces`` deltas, then message_delta (stop reason, output tokens), message_stop."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            empty, field, delta_type, whole = {"text": ""}, "text", "text_delta", block["text"]
        elif kind == "thinking":
            empty = {"thinking": "", "signature": ""}
            field, delta_type, whole = "thinking", "thinking_delta", block["thinking"]
        else:
            empty = {"input": {}}
            field, delta_type = "partial_json", "input_json_delta"
            whole = orjson.dumps(block["input"]).decode()
        opened = {k: v for k, v in block.items() if k not in ("text", "thinking", "signature")}
        opened.update(empty)
        events.append({"type": "content_block_start", "index": index, "content_block": opened})
        size = max(1, -(-len(whole) // pieces))
        for at in range(0, len(whole), size):
            delta = {"type": delta_type, field: whole[at : at + size]}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        if kind == "thinking":
            delta = {"type": "signature_delta", "signature": block["signature"]}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
        if index == 0:
            events.append({"type": "ping"})
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    out_usage = {"output_tokens": usage["output_tokens"]}
    events.append({"type": "message_delta", "delta": delta, "usage": out_usage})
    events.append({"type": "message_stop"})
    return events


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _last_user_text(body: Any) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
            return str(content)
    return ""


def echo_reply(body: Any) -> Reply:
    text = f"echo: {_last_user_text(body)}"
    prompt = sum(len(str(m.get("content", "")).split()) + 4 for m in body.get("messages") or [])
    message = message_json(
        text, model=body.get("model", "claude"), usage=usage_json(prompt, len(text.split()))
    )
    if body.get("stream"):
        return Reply(chunks=events_for(message))
    return Reply(json=message)


def count_tokens_of(body: Any) -> int:
    """The fake count_tokens answer: one token per 4 bytes of the request's JSON."""
    return len(orjson.dumps(body)) // 4


class FakeAnthropic(LoopbackServer[Reply, Received]):
    """Start with ``with FakeAnthropic() as fake:``; point clients at ``fake.base_url``."""

    request_id_header = "request-id"

    def encode_event(self, event: Any) -> bytes:
        return sse(event)  # Anthropic's named events; no [DONE] after them

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        _, body = await read_body(request)
        self.requests.append(Received(request.method, request.path, dict(request.headers), body))
        if request.method == "POST" and request.path == "/v1/messages/count_tokens":
            return web.json_response({"input_tokens": count_tokens_of(body or {})})
        if request.method != "POST" or request.path != "/v1/messages":
            return web.json_response(
                error_body("not_found_error", f"Not found: {request.path}"), status=404
            )
        reply = self.replies.popleft() if self.replies else echo_reply(body or {})
        return await self._respond(request, reply, self.request_headers(reply))


@contextlib.contextmanager
def fake_anthropic(*replies: Reply) -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        fake.script(*replies)
        yield fake
