"""The semantic cache with the real bundled MiniLM model (no network: tests reach only
loopback, and the hub is switched off), an embeddings endpoint on the fake upstream, the
numpy index and the Redis-backed store."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import chatgate
from chatgate.cache import Cache, configure_cache
from chatgate.cache.semantic import (
    EndpointEmbedder,
    LocalEmbedder,
    MemoryVectorStore,
    SemanticCache,
    last_user_text,
)
from chatgate.cache.semantic.redis_store import RedisVectorStore
from chatgate.chat_request import chat_request
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.redis_server import RedisServer

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "semantic" / "minilm_reference.json"


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        local = LocalEmbedder()
        local.model()  # loaded from the installed package's files, nothing fetched
        yield local


def test_numpy_minilm_matches_sentence_transformers(embedder: LocalEmbedder) -> None:
    """The reference vectors were made by sentence-transformers (PyTorch) from the same files."""
    reference = json.loads(REFERENCE.read_text())
    ours = embedder.embed_now(reference["sentences"])
    theirs = np.asarray(reference["embeddings"], dtype=np.float32)
    assert ours.shape == theirs.shape == (len(reference["sentences"]), 384)
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def ask(fake: FakeOpenAI, text: str, cache: Any, system: str = "be brief", **kw: Any) -> Any:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    return chatgate.acompletion(
        "gpt-4o-mini",
        messages,
        api_key="sk",
        api_base=fake.base_url,
        temperature=0,
        cache=cache,
        **kw,
    )


async def test_similar_questions_share_an_answer_within_one_scope(
    fake: FakeOpenAI, embedder: LocalEmbedder
) -> None:
    cache = Cache(semantic=SemanticCache(embedder, threshold=0.95))
    first = await ask(fake, "How do I reverse a list in Python?", cache)
    similar = await ask(fake, "How can I reverse a Python list?", cache)  # cosine 0.979
    assert similar.meta.cache_hit
    assert similar.content == first.content
    assert similar.meta.cache_similarity is not None
    assert 0.95 <= similar.meta.cache_similarity < 1.0
    assert len(fake.requests) == 1
    assert cache.stats.semantic_hits == 1
    # below the threshold: a different question, answered afresh
    sort = await ask(fake, "How do I sort a list in Python?", cache)  # cosine 0.574
    assert not sort.meta.cache_hit
    # different instructions never share answers, however close the question
    other = await ask(fake, "How can I reverse a Python list?", cache, system="answer in French")
    assert not other.meta.cache_hit
    tools = [{"type": "function", "function": {"name": "run_python"}}]
    with_tools = await ask(fake, "How can I reverse a Python list?", cache, tools=tools)
    assert not with_tools.meta.cache_hit
    streamed = await ask(fake, "How can I reverse a Python list?", cache, stream=True)
    assert streamed.cache_hit
    assert (await streamed.afinal()).content == first.content
    assert len(fake.requests) == 4


async def test_semantic_hit_ends_with_its_exact_entry(
    fake: FakeOpenAI, embedder: LocalEmbedder
) -> None:
    cache = Cache(semantic=SemanticCache(embedder, threshold=0.95))
    await ask(fake, "What's the capital of France?", cache)
    await cache.backend.clear()  # the exact entries go (expiry, eviction); the index stays
    again = await ask(fake, "What is the capital of France?", cache)  # cosine 0.993, but gone
    assert not again.meta.cache_hit


def test_only_text_user_questions_are_compared() -> None:
    text = chat_request(
        "m",
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
        {},
    )
    assert last_user_text(text) == (0, "a\nb")
    image = chat_request(
        "m",
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
            }
        ],
        {},
    )
    assert last_user_text(image) is None
    tool_turn = chat_request(
        "m",
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "r"},
        ],
        {},
    )
    assert last_user_text(tool_turn) is None


def embedding_reply(*vectors: list[float]) -> Reply:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return Reply(
        json={
            "object": "list",
            "data": data,
            "model": "emb",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
    )


async def test_endpoint_embedder_and_its_failures(fake: FakeOpenAI) -> None:
    embed = EndpointEmbedder("emb-small", api_base=fake.base_url, api_key="sk-emb", dimensions=3)
    fake.script(embedding_reply([3.0, 0.0, 4.0]))
    vectors = await embed.embed(["hello"])
    assert np.allclose(vectors, [[0.6, 0.0, 0.8]])
    sent = fake.last
    assert sent.path == "/v1/embeddings"
    assert sent.body == {"model": "emb-small", "input": ["hello"], "dimensions": 3}
    assert sent.headers["Authorization"] == "Bearer sk-emb"
    # an outage of the endpoint degrades to exact lookups, never fails the call
    cache = Cache(semantic=SemanticCache(embed))
    fake.script(Reply(status=503, json={"error": {"message": "down"}}))
    answer = await ask(fake, "anything", cache)
    assert answer.content == "echo: anything"
    with pytest.raises(chatgate.APIError, match="unexpected body"):
        fake.script(Reply(json={"nope": 1}))
        await embed.embed(["x"])


def unit(v: list[float]) -> Any:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


async def test_memory_index_threshold_ttl_and_bounds() -> None:
    now = [1000.0]
    store = MemoryVectorStore(max_entries=4, clock=lambda: now[0])
    await store.add("s", unit([1, 0]), "k1", 10)
    await store.add("s", unit([0, 1]), "k2", None)
    assert await store.search("s", unit([1, 0.1]), 0.99) == ("k1", pytest.approx(0.995, abs=1e-3))
    assert await store.search("s", unit([1, 1]), 0.99) is None
    assert await store.search("other", unit([1, 0]), 0.5) is None
    now[0] += 11
    assert await store.search("s", unit([1, 0]), 0.5) is None  # k1 expired; k2 too far
    for i in range(3):
        await store.add(f"t{i}", unit([1, i]), f"t{i}", None)
    assert len(store) <= 4
    assert await store.search("s", unit([0, 1]), 0.5) is None  # least recently used scope went
    for i in range(10):
        await store.add("big", unit([1, i]), f"b{i}", None)
    assert len(store) <= 4


async def test_ten_thousand_entries_find_the_right_one_quickly() -> None:
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(10_000, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    store = MemoryVectorStore()
    for i, row in enumerate(rows):
        store.add_now("scope", row, f"k{i}", 0.0)
    query = rows[4321] + 0.01 * rng.normal(size=384).astype(np.float32)
    query /= np.linalg.norm(query)
    started = time.perf_counter()
    found = await store.search("scope", query, 0.9)
    elapsed = time.perf_counter() - started
    assert found is not None
    assert found[0] == "k4321"
    assert elapsed < 0.05  # measured ~1 ms; bench/cache.py reports p50/p99


async def test_redis_store_is_shared_between_instances(redis_server: RedisServer) -> None:
    prefix = f"sem-{uuid.uuid4().hex[:8]}:"
    one = RedisVectorStore(redis_server.url, prefix=prefix)
    two = RedisVectorStore(redis_server.url, prefix=prefix)
    await one.add("scope", unit([1, 0, 0]), "key-a", 60)
    assert await two.search("scope", unit([1, 0.05, 0]), 0.95) == (
        "key-a",
        pytest.approx(0.9988, abs=1e-3),
    )
    await two.add("scope", unit([0, 1, 0]), "key-b", None)
    assert (await one.search("scope", unit([0, 1, 0]), 0.95) or ("",))[0] == "key-b"
    assert await one.search("other", unit([1, 0, 0]), 0.5) is None
    await one.clear()
    fresh = RedisVectorStore(redis_server.url, prefix=prefix)
    assert await fresh.search("scope", unit([1, 0, 0]), 0.5) is None
    for store in (one, two, fresh):
        await store.aclose()


async def test_semantic_cache_over_redis_end_to_end(
    fake: FakeOpenAI, embedder: LocalEmbedder, redis_server: RedisServer
) -> None:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}:"

    def instance() -> Cache:  # one gateway instance: its own process memory, shared Redis
        store = RedisVectorStore(redis_server.url, prefix=prefix + "sem:")
        return Cache(
            "redis", url=redis_server.url, prefix=prefix, semantic=SemanticCache(embedder, store)
        )

    a, b = instance(), instance()
    first = await ask(fake, "How do I delete a git branch?", a)
    other = await ask(fake, "How do I remove a branch in git?", b)  # cosine 0.933
    assert not other.meta.cache_hit  # below the default 0.95
    close = await ask(fake, "how do i delete a git branch?", b)
    assert close.meta.cache_hit
    assert close.content == first.content
    assert len(fake.requests) == 2
    for cache in (a, b):
        await cache.clear()
        await cache.aclose()


async def test_a_refreshed_answer_is_indexed_too(fake: FakeOpenAI, embedder: LocalEmbedder) -> None:
    configure_cache(Cache(semantic=SemanticCache(embedder, threshold=0.95)))
    try:
        await ask(fake, "How do I reverse a list in Python?", {"no-cache": True})
        similar = await ask(fake, "How can I reverse a Python list?", None)
    finally:
        configure_cache(False)
    assert similar.meta.cache_hit
    assert len(fake.requests) == 1
