"""A fake OpenAI upstream: a real HTTP server on 127.0.0.1 speaking the Chat Completions wire
format exactly, scriptable per test and recording what it received.

It runs on its own thread and event loop, so sync tests, async tests and separate processes
(the gateway) all reach it over a real socket. With nothing scripted it answers by echoing the
last user message, so every answer depends on the request that produced it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Reply:
    """One scripted answer. ``json`` for a whole body; ``chunks`` for an SSE stream (dicts are
    sent as ``data: {json}``, strings as raw bytes); ``drop_after`` cuts the connection after
    that many chunks; ``delay_s`` holds back the status line (slow first byte)."""

    status: int = 200
    json: Any = None
    chunks: list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    drop_after: int | None = None
    done: bool = True
    raw: bytes | None = None


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def completion_json(
    content: str | None = "Hello!",
    *,
    model: str = "gpt-4o-mini",
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 9,
    completion_tokens: int = 3,
    cached_tokens: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1732000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": usage_json(prompt_tokens, completion_tokens, cached_tokens),
        **extra,
    }


def usage_json(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def chunk_json(
    delta: dict[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    model: str = "gpt-4o-mini",
    usage: dict[str, Any] | None = None,
    no_choices: bool = False,
) -> dict[str, Any]:
    choices = (
        []
        if no_choices
        else [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
    )
    chunk: dict[str, Any] = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": 1732000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }
    if usage is not None or no_choices:
        chunk["usage"] = usage
    return chunk


def text_stream(
    words: list[str], *, model: str = "gpt-4o-mini", usage: tuple[int, int] | None = (9, 3)
) -> list[Any]:
    """The chunks OpenAI sends for a plain answer: role, one chunk per piece, finish, usage."""
    chunks: list[Any] = [chunk_json({"role": "assistant", "content": ""}, model=model)]
    chunks += [chunk_json({"content": w}, model=model) for w in words]
    chunks.append(chunk_json({}, finish_reason="stop", model=model))
    if usage is not None:
        chunks.append(chunk_json(model=model, usage=usage_json(*usage), no_choices=True))
    return chunks


def error_json(message: str, type_: str, code: str | None = None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _last_user_text(body: Any) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content)
    return ""


def echo_reply(body: Any) -> Reply:
    """The default answer: 'echo: <last user text>', streamed word by word when asked."""
    model = body.get("model", "gpt-4o-mini")
    text = f"echo: {_last_user_text(body)}"
    prompt = sum(len(str(m.get("content", "")).split()) + 4 for m in body.get("messages") or [])
    completion = len(text.split())
    if not body.get("stream"):
        return Reply(
            json=completion_json(
                text, model=model, prompt_tokens=prompt, completion_tokens=completion
            )
        )
    pieces = [w + " " for w in text.split()[:-1]] + text.split()[-1:]
    include = (body.get("stream_options") or {}).get("include_usage")
    return Reply(
        chunks=text_stream(pieces, model=model, usage=(prompt, completion) if include else None)
    )


def embedding_vector(text: str, dimensions: int = 8) -> list[float]:
    """A deterministic vector for a text: the same text always embeds the same way."""
    seed = sum(text.encode()) or 1
    return [round(((seed * (i + 7)) % 97) / 97 - 0.5, 6) for i in range(dimensions)]


def embeddings_reply(body: Any) -> Reply:
    """OpenAI's /embeddings answer for the request's input, floats or base64 float32."""
    raw = body.get("input", "")
    texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
    dimensions = int(body.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding_vector(text, dimensions)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(len(t.split()) for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    model = body.get("model", "text-embedding-3-small")
    return Reply(json={"object": "list", "data": data, "model": model, "usage": usage})


class FakeOpenAI:
    """Start with ``with FakeOpenAI() as fake:``; point clients at ``fake.base_url``."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.disconnects = 0  # answers whose client went away before the end
        self.files: dict[str, tuple[bytes, str]] = {}  # GET path -> (body, content type)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- scripting ----------------------------------------------------------------------------

    def script(self, *replies: Reply) -> FakeOpenAI:
        self.replies.extend(replies)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def last(self) -> Received:
        return self.requests[-1]

    def wait_for_disconnect(self, count: int = 1, timeout_s: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.disconnects >= count:
                return True
            time.sleep(0.01)
        return False

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- serving ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(Received(request.method, request.path, dict(request.headers), body))
        if request.method == "GET" and request.path in self.files:
            data, content_type = self.files[request.path]
            return web.Response(body=data, content_type=content_type)
        if request.method == "GET" and not request.path.endswith("/models"):
            return web.json_response(error_json("no such file", "not_found"), status=404)
        if request.path.endswith("/models"):
            return web.json_response(
                {
                    "object": "list",
                    "data": [
                        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "fake"}
                    ],
                }
            )
        default = embeddings_reply if request.path.endswith("/embeddings") else echo_reply
        reply = self.replies.popleft() if self.replies else default(body or {})
        headers = {"x-request-id": f"req_fake_{len(self.requests)}", **reply.headers}
        return await self._respond(request, reply, headers)

    async def _respond(
        self, request: web.Request, reply: Reply, headers: dict[str, str]
    ) -> web.StreamResponse:
        """Send a scripted reply: after its delay, raw bytes, a JSON body, or an SSE stream."""
        if reply.delay_s:
            try:
                await asyncio.sleep(reply.delay_s)
            except asyncio.CancelledError:  # the client closed the connection while we waited
                self.disconnects += 1
                raise
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=headers)
        if reply.chunks is None:
            return web.Response(
                status=reply.status,
                body=orjson.dumps(reply.json),
                headers=headers,
                content_type="application/json",
            )
        return await self._stream(request, reply, headers)

    async def _stream(
        self, request: web.Request, reply: Reply, headers: dict[str, str]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=reply.status, headers=headers)
        resp.content_type = "text/event-stream"
        await resp.prepare(request)
        try:
            for n, chunk in enumerate(reply.chunks or []):
                if reply.drop_after is not None and n >= reply.drop_after:
                    assert request.transport is not None
                    request.transport.close()  # the connection dies mid-answer
                    return resp
                data = (
                    chunk.encode()
                    if isinstance(chunk, str)
                    else b"data: " + orjson.dumps(chunk) + b"\n\n"
                )
                await resp.write(data)
                if reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
            if reply.done:
                await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return resp


@contextlib.contextmanager
def fake_openai(*replies: Reply) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.script(*replies)
        yield fake
