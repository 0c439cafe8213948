"""A fast fake OpenAI upstream for benchmarks, run as its own process.

    python bench/upstream.py PORT [--chunks N] [--chunk-delay-ms MS]

Answers POST .../chat/completions with a fixed chat.completion, or with N SSE chunks (+ a usage
chunk when asked, + [DONE]) when the body says "stream": true. No parsing beyond what it must.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

import orjson
from aiohttp import web

_BASE = {"id": "chatcmpl-bench", "created": 1700000000, "model": "gpt-4o-mini"}
_TEXT = "The quick brown fox jumps over the lazy dog. " * 6
_USAGE = {"prompt_tokens": 42, "completion_tokens": 60, "total_tokens": 102}
ANSWER = orjson.dumps(
    {
        **_BASE,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _TEXT},
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
    }
)


def _event(choices: list[object], **extra: object) -> bytes:
    body = {**_BASE, "object": "chat.completion.chunk", "choices": choices, **extra}
    return b"data: " + orjson.dumps(body) + b"\n\n"


ROLE = _event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
TOKEN = _event([{"index": 0, "delta": {"content": " token"}}])
FINISH = _event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
USAGE = _event([], usage=_USAGE)


def app(chunks: int, delay_s: float) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if not body.get("stream"):
            return web.Response(body=ANSWER, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(ROLE)
        for _ in range(chunks):
            if delay_s:
                await asyncio.sleep(delay_s)
            await resp.write(TOKEN)
        await resp.write(FINISH)
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(USAGE)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    application = web.Application()
    application.router.add_post("/{tail:.*}", handler)
    return application


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(chunks: int = 20, delay_ms: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start the upstream in a child process; returns it and its base URL (ends in /v1)."""
    port = free_port()
    args = [sys.executable, __file__, str(port), "--chunks", str(chunks)]
    proc = subprocess.Popen([*args, "--chunk-delay-ms", str(delay_ms)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/v1"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("bench upstream did not start")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        app(args.chunks, args.chunk_delay_ms / 1000),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
    )
