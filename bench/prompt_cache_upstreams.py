"""Fake upstreams for bench/prompt_cache.py that keep a prompt cache the way each provider does,
one cache per server (a server is one deployment), and report it in their usage objects.

- ``CachingOpenAI`` (Chat Completions): OpenAI caches automatically. A prompt's prefix is
  read from cache when a prompt sharing it at least 1,024 tokens long was processed on this
  same deployment before; the hit grows in 128-token steps (``cached_tokens``). Every prompt
  processed is cached.
- ``CachingAnthropic`` (Messages API): nothing is cached unless a block carries
  ``cache_control`` (or the request carries it at the top level: the last block). At each
  breakpoint whose prefix holds the model's minimum an entry is written; a request reads the
  longest entry that ends at one of its blocks within 20 blocks before one of its
  breakpoints. ``cache_read_input_tokens`` is what was read, ``cache_creation_input_tokens``
  what lies between it and the last breakpoint, ``input_tokens`` the rest.

Tokens are counted as one per 4 characters of each block's JSON (``cache_control`` left out,
so marking a block does not change what it costs). Every answer is 200 output tokens.
Entries never expire: the replay takes seconds, well inside the 5-minute TTL.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web
from tests.fakes.anthropic_server import message_json
from tests.fakes.anthropic_server import usage_json as anthropic_usage
from tests.fakes.openai_server import completion_json

from chatgate.providers.anthropic.cache_points import minimum_tokens

__all__ = ["OUTPUT_TOKENS", "CachingAnthropic", "CachingOpenAI"]

OUTPUT_TOKENS = 200
_CHARS = 4  # per token
_OPENAI_MIN = 1024
_OPENAI_STEP = 128
_LOOKBACK = 20


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class _Server:
    """An aiohttp server on 127.0.0.1 in the running loop."""

    path = "/"
    root = ""  # what the provider's SDK calls base_url, after host and port

    def __init__(self) -> None:
        self.entries: set[str] = set()
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.root}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(self.answer(orjson.loads(await request.read())))

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class CachingOpenAI(_Server):
    path = "/v1/chat/completions"
    root = "/v1"

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _json(body.get("tools") or []) + b"".join(_json(m) for m in body["messages"])
        step = _OPENAI_STEP * _CHARS
        digest = hashlib.blake2b(digest_size=16)
        cached = 0
        seen: list[str] = []
        for end in range(step, len(text) + 1, step):
            digest.update(text[end - step : end])
            if end < _OPENAI_MIN * _CHARS:
                continue
            h = digest.copy().hexdigest()
            seen.append(h)
            if h in self.entries:
                cached = end // _CHARS
        self.entries.update(seen)
        prompt = len(text) // _CHARS
        return completion_json(
            "ok",
            model=body["model"],
            prompt_tokens=prompt,
            completion_tokens=OUTPUT_TOKENS,
            cached_tokens=cached,
        )


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Tools, system, then every message's content blocks, in the order Anthropic caches."""
    out: list[dict[str, Any]] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    out += system or []
    for turn in body["messages"]:
        content = turn["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        out += [{**block, "role": turn["role"]} for block in content]
    return out


class CachingAnthropic(_Server):
    path = "/v1/messages"

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        blocks = _blocks(body)
        marked = [i for i, b in enumerate(blocks) if "cache_control" in b]
        if "cache_control" in body and blocks:
            marked.append(len(blocks) - 1)
        digest = hashlib.blake2b(digest_size=16)
        ends: list[int] = []  # characters up to the end of each block
        hashes: list[str] = []
        size = 0
        for block in blocks:
            data = _json({k: v for k, v in block.items() if k != "cache_control"})
            digest.update(data)
            size += len(data)
            ends.append(size)
            hashes.append(digest.copy().hexdigest())
        read = 0
        for bp in marked:
            for i in range(bp, max(-1, bp - _LOOKBACK - 1), -1):
                if hashes[i] in self.entries:
                    read = max(read, ends[i])
                    break
        least = minimum_tokens(body["model"]) * _CHARS
        written = 0
        for bp in marked:
            if ends[bp] >= least and ends[bp] > read:
                self.entries.add(hashes[bp])
                written = max(written, ends[bp])
        read_t = read // _CHARS
        write_t = max(0, written // _CHARS - read_t)
        usage = anthropic_usage(
            size // _CHARS - read_t - write_t, OUTPUT_TOKENS, cache_read=read_t, cache_write=write_t
        )
        return message_json("ok", model=body["model"], usage=usage)
