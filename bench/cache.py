"""Cache hit latency per backend next to a miss against the fast fake upstream, and the
semantic cache at 10,000 entries.

    python bench/cache.py [--calls 2000] [--semantic-entries 10000]

Every figure is the time of one ``await cache.get_or_call(...)`` (a hit) or one uncached
``chatgate.acompletion`` (the reference miss), p50 and p99 over CALLS sequential calls after
a warm-up, all in one run. Targets (p50): memory <= 0.2 ms, SQLite <= 1 ms, Redis <= 2 ms.
Needs redis-server on PATH and the semantic extra plus the bundled model.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes.redis_server

import numpy as np
from tests.fakes.redis_server import RedisServer

import chatgate
import upstream
from chatgate.cache import Cache
from chatgate.cache.semantic import LocalEmbedder, MemoryVectorStore
from chatgate.cache.semantic.redis_store import RedisVectorStore
from chatgate.chat_request import chat_request
from chatgate.client import send
from chatgate.providers.registry import resolve_deployment
from chatgate.transport.http import Timeouts
from chatgate.types import ChatResponse

MESSAGES = [{"role": "user", "content": "Say something short about benchmarks."}]

# Labeled question pairs: True when one answer serves both. Cosines are printed per pair.
PAIRS = [
    ("What is the capital of France?", "What's the capital of France?", True),
    ("What is the capital of France?", "Which city is the capital of France?", True),
    ("What is the capital of France?", "Tell me France's capital city.", True),
    ("How do I reverse a list in Python?", "How can I reverse a Python list?", True),
    ("What year did World War II end?", "When did WW2 end?", True),
    ("How do I delete a git branch?", "How do I remove a branch in git?", True),
    ("How do I delete a git branch?", "how do i delete a git branch?", True),
    ("What is the capital of France?", "What is the capital of Germany?", False),
    ("How do I reverse a list in Python?", "How do I sort a list in Python?", False),
    ("How do I reverse a list in Python?", "How do I reverse a string in Python?", False),
    ("Convert 100 USD to EUR", "Convert 200 USD to EUR", False),
    (
        "Is it safe to take ibuprofen with alcohol?",
        "Is it safe to take acetaminophen with alcohol?",
        False,
    ),
    (
        "Summarize this article in three sentences.",
        "Summarize this article in five sentences.",
        False,
    ),
    ("Write a haiku about autumn", "Write a haiku about spring", False),
    ("How do I delete a git branch?", "How do I delete a remote git branch?", False),
    ("Translate hello into Spanish", "Translate hello into French", False),
]


def pct(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def timed(fn: Callable[[], Awaitable[object]], calls: int) -> tuple[float, float]:
    for _ in range(min(200, calls)):
        await fn()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000.0)
    return pct(samples)


async def backends(base_url: str, redis_url: str, calls: int) -> list[tuple[str, float, float]]:
    deployment = resolve_deployment("openai/gpt-4o-mini", api_key="sk-bench", api_base=base_url)
    request = chat_request("gpt-4o-mini", MESSAGES, {"temperature": 0})
    stream_request = chat_request("gpt-4o-mini", MESSAGES, {"temperature": 0, "stream": True})

    async def call() -> ChatResponse:
        return await send(request, deployment, timeouts=Timeouts())

    async def miss() -> object:
        return await chatgate.acompletion(
            "openai/gpt-4o-mini", MESSAGES, api_key="sk-bench", api_base=base_url
        )

    rows = [("miss: upstream call, no cache", *await timed(miss, calls))]
    with tempfile.TemporaryDirectory() as tmp:
        caches = {
            "memory": Cache("memory"),
            "sqlite": Cache("sqlite", path=Path(tmp) / "bench.db"),
            "redis": Cache("redis", url=redis_url),
        }
        for name, cache in caches.items():
            await cache.get_or_call(request, "bench", call)  # store it

            async def hit(cache: Cache = cache) -> object:
                return await cache.get_or_call(request, "bench", call)

            rows.append((f"hit: {name}", *await timed(hit, calls)))
            assert cache.stats.misses == 1, cache.stats

            async def replay(cache: Cache = cache) -> object:
                stream = await cache.get_or_call(stream_request, "bench", call)
                assert not isinstance(stream, ChatResponse)
                return [c async for c in stream]

            if name == "memory":
                rows.append(("hit: memory, replayed as a stream", *await timed(replay, calls)))
            await cache.clear()
            await cache.aclose()
    return rows


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


async def semantic(redis_url: str, entries: int, calls: int) -> list[tuple[str, float, float]]:
    embedder = LocalEmbedder()
    embedder.model()
    rows_ = unit_rows(entries, 384, 1)
    queries = unit_rows(calls, 384, 2)
    memory = MemoryVectorStore()
    for i, row in enumerate(rows_):
        memory.add_now("scope", row, f"k{i}", 0.0)
    shared = RedisVectorStore(redis_url, prefix="bench-sem:")
    await shared.clear()
    for i, row in enumerate(rows_):
        await shared.add("scope", row, f"k{i}", None)
    it = iter(range(10**9))

    async def search_memory() -> object:
        return await memory.search("scope", queries[next(it) % calls], 0.95)

    async def search_redis() -> object:
        return await shared.search("scope", queries[next(it) % calls], 0.95)

    async def embed() -> object:
        return await embedder.embed(["How do I reverse a list in Python?"])

    out = [
        (f"semantic search, numpy, {entries} entries", *await timed(search_memory, calls)),
        (f"semantic search, redis-shared, {entries} entries", *await timed(search_redis, calls)),
        ("embed one question (MiniLM, numpy)", *await timed(embed, min(calls, 300))),
    ]
    await shared.clear()
    await shared.aclose()
    return out


def thresholds() -> None:
    model = LocalEmbedder()
    print("\nthreshold trade-off (all-MiniLM-L6-v2), cosine per labeled pair:")
    scored = []
    for a, b, same in PAIRS:
        vectors = model.embed_now([a, b])
        cosine = float(vectors[0] @ vectors[1])
        scored.append((cosine, same))
        print(f"  {cosine:.3f}  {'same ' if same else 'DIFF '} {a!r} / {b!r}")
    print("  threshold  paraphrases served  false hits (different questions served)")
    for threshold in (0.85, 0.90, 0.92, 0.95, 0.97):
        hits = sum(c >= threshold for c, same in scored if same)
        false = sum(c >= threshold for c, same in scored if not same)
        total_same = sum(same for _, same in scored)
        total_diff = len(scored) - total_same
        print(f"  {threshold:9.2f}  {hits}/{total_same:<17} {false}/{total_diff}")


async def run(base_url: str, redis_url: str, calls: int, entries: int) -> None:
    rows = await backends(base_url, redis_url, calls)
    rows += await semantic(redis_url, entries, calls)
    miss_p50 = rows[0][1]
    print(f"\n{'':52} {'p50 ms':>8} {'p99 ms':>8} {'miss/hit':>9}")
    for name, p50, p99 in rows:
        ratio = f"{miss_p50 / p50:8.1f}x" if name.startswith("hit") else ""
        print(f"{name:52} {p50:8.3f} {p99:8.3f} {ratio}")
    thresholds()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--semantic-entries", type=int, default=10_000)
    args = parser.parse_args()
    proc, base_url = upstream.start()
    try:
        with RedisServer() as redis:
            try:
                import uvloop

                uvloop.run(run(base_url, redis.url, args.calls, args.semantic_entries))
            except ImportError:
                asyncio.run(run(base_url, redis.url, args.calls, args.semantic_entries))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
