"""aiohttp vs httpx as chatgate's upstream client, against a fake upstream in a child process.

Run: .venv/bin/python bench/http_clients.py [--quick]   (results: docs/performance.md)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import selectors
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import httpx
import orjson
import uvloop
from aiohttp import web

PATH = "/v1/chat/completions"
CONCURRENCY = (1, 16, 64)
REPEATS = 3
RUN_DEADLINE_S = 60.0  # hard bound per measured run
MSG = {"role": "user", "content": "Summarise the following text in one line. " * 22}
BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [MSG], "max_tokens": 64})
STREAM_BODY = orjson.dumps({**orjson.loads(BODY), "stream": True})
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
_TEXT = "The quick brown fox jumps over the lazy dog while the gateway relays tokens. " * 4
_BASE = {"id": "chatcmpl-bench0001", "created": 1700000000, "model": "gpt-4o-mini"}
_CHOICE = {"index": 0, "message": {"role": "assistant", "content": _TEXT}, "finish_reason": "stop"}
_USAGE = {"prompt_tokens": 240, "completion_tokens": 64, "total_tokens": 304}
_ANS = {**_BASE, "object": "chat.completion", "choices": [_CHOICE], "usage": _USAGE}
ANSWER = orjson.dumps(_ANS)  # ~570 B
_DELTA = {"index": 0, "delta": {"content": " token"}}
CHUNK = orjson.dumps({**_BASE, "object": "chat.completion.chunk", "choices": [_DELTA]})
EVENTS = [b"data: " + CHUNK + b"\n\n"] * 20 + [b"data: [DONE]\n\n"]


def serve() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if not body.get("stream"):
            return web.Response(body=ANSWER, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in EVENTS:
            await resp.write(event)
        await resp.write_eof()
        return resp

    async def main() -> None:
        app = web.Application()
        app.router.add_post(PATH, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        parent = os.getppid()
        for _ in range(3600):  # exit on our own if the parent dies without terminating us
            if os.getppid() != parent:
                break
            await asyncio.sleep(1)

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=15):
            proc.kill()
            raise RuntimeError("fake upstream did not start")
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}{PATH}"


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Shared SSE splitter, so both clients do the same parsing work."""
    buf = b""
    async for chunk in chunks:
        buf += chunk
        while (i := buf.find(b"\n\n")) >= 0:
            event, buf = buf[:i], buf[i + 2 :]
            if event.startswith(b"data: "):
                yield event[6:]


async def consume(chunks: AsyncIterator[bytes], t0: float) -> float:
    ttft, n = 0.0, 0
    async for data in sse_events(chunks):  # read to EOF (past [DONE]) so the conn is reusable
        if data == b"[DONE]":
            continue
        orjson.loads(data)
        n += 1
        if n == 1:
            ttft = time.perf_counter() - t0
    assert n == 20, n
    return ttft


Request = Callable[[], Awaitable[float]]  # returns time to first chunk (0 if not streaming)


def aiohttp_req(s: aiohttp.ClientSession, url: str, stream: bool) -> Request:
    async def plain() -> float:
        async with s.post(url, data=BODY, headers=HEADERS) as r:
            orjson.loads(await r.read())
        return 0.0

    async def sse() -> float:
        t0 = time.perf_counter()
        async with s.post(url, data=STREAM_BODY, headers=HEADERS) as r:
            return await consume(r.content.iter_any(), t0)

    return sse if stream else plain


def httpx_req(c: httpx.AsyncClient, url: str, stream: bool) -> Request:
    async def plain() -> float:
        r = (await c.post(url, content=BODY, headers=HEADERS)).raise_for_status()
        orjson.loads(r.content)
        return 0.0

    async def sse() -> float:
        t0 = time.perf_counter()
        async with c.stream("POST", url, content=STREAM_BODY, headers=HEADERS) as r:
            r.raise_for_status()
            return await consume(r.aiter_bytes(), t0)

    return sse if stream else plain


async def drive(req: Request, n: int, conc: int) -> tuple[float, list[float], list[float]]:
    lat: list[float] = []
    ttft: list[float] = []
    left = n
    deadline = time.perf_counter() + RUN_DEADLINE_S

    async def worker() -> None:
        nonlocal left
        while left > 0 and time.perf_counter() < deadline:
            left -= 1
            t0 = time.perf_counter()
            first = await req()
            lat.append(time.perf_counter() - t0)
            ttft.append(first)

    t = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(conc))), RUN_DEADLINE_S + 30)
    return len(lat) / (time.perf_counter() - t), lat, ttft


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1e3


def make_client(lib: str, conc: int) -> aiohttp.ClientSession | httpx.AsyncClient:
    """One shared client per run; pool limit == concurrency, keep-alive on, 30 s timeout."""
    if lib == "aiohttp":
        conn = aiohttp.TCPConnector(limit=conc, limit_per_host=conc, keepalive_timeout=60)
        tmo = aiohttp.ClientTimeout(total=30)
        return aiohttp.ClientSession(connector=conn, timeout=tmo, raise_for_status=True)
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    return httpx.AsyncClient(limits=limits, timeout=30)


async def run_one(lib: str, url: str, stream: bool, conc: int, n: int) -> list[float]:
    async with make_client(lib, conc) as c:
        if isinstance(c, aiohttp.ClientSession):
            req = aiohttp_req(c, url, stream)
        else:
            req = httpx_req(c, url, stream)
        await drive(req, max(conc * 4, n // 10), conc)  # warm-up: fill the pool
        rps, lat, ttft = await drive(req, n, conc)
    return [rps, pct(lat, 0.5), pct(lat, 0.99), pct(ttft, 0.5) if stream else 0.0, len(lat)]


async def bench(url: str, quick: bool) -> None:
    sizes = {1: 200, 16: 500, 64: 500} if quick else {1: 2000, 16: 5000, 64: 5000}
    res: dict[tuple[str, str, int], list[list[float]]] = {}
    for rep, mode, conc in itertools.product(range(REPEATS), ("json", "sse"), CONCURRENCY):
        for lib in ("aiohttp", "httpx")[:: 1 if rep % 2 == 0 else -1]:  # alternate who goes first
            r = await run_one(lib, url, mode == "sse", conc, sizes[conc])
            res.setdefault((lib, mode, conc), []).append(r)
            print(f"rep {rep + 1} {lib:7} {mode} c={conc:<2} {r[0]:6.0f} req/s n={r[4]:.0f}")
    med = {k: [statistics.median(col) for col in zip(*v, strict=True)] for k, v in res.items()}
    print("\n| client | mode | conc | req/s | p50 ms | p99 ms | TTFC p50 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (lib, mode, conc), (rps, p50, p99, tt, _) in sorted(med.items(), key=lambda kv: kv[0][1:]):
        ttfc = f"{tt:.2f}" if mode == "sse" else "-"
        print(f"| {lib} | {mode} | {conc} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {ttfc} |")
    print("\n| mode | conc | req/s aiohttp/httpx | p50 aiohttp/httpx |")
    print("|---|---:|---:|---:|")
    for mode in ("json", "sse"):
        for conc in CONCURRENCY:
            a, h = med[("aiohttp", mode, conc)], med[("httpx", mode, conc)]
            print(f"| {mode} | {conc} | {a[0] / h[0]:.2f} | {a[1] / h[1]:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short run (fewer requests)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    proc, url = start_server()
    try:
        uvloop.run(bench(url, args.quick))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
