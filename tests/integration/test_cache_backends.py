"""The SQLite file and Redis backends against a real file and a real redis-server; the cache
layer over each, end to end through the OpenAI and Anthropic fakes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import chatgate
from chatgate.cache import Cache, CacheBackend, RedisBackend, SQLiteBackend
from tests.clock import ManualClock, wait_until
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.redis_server import RedisServer


@pytest.fixture(params=["sqlite", "redis"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[CacheBackend]:
    made: CacheBackend
    if request.param == "sqlite":
        made = SQLiteBackend(tmp_path / "cache.db")
    else:
        made = RedisBackend(redis_server.url, prefix=f"t-{uuid.uuid4().hex[:8]}:")
    yield made
    await made.clear()
    await made.aclose()


async def test_get_set_delete_clear(backend: CacheBackend) -> None:
    assert await backend.get("k") is None
    await backend.set("k", b"\x00binary\xff", None)
    await backend.set("k2", b"two", 60)
    assert await backend.get("k") == b"\x00binary\xff"
    await backend.set("k", b"replaced", None)
    assert await backend.get("k") == b"replaced"
    await backend.delete("k")
    assert await backend.get("k") is None
    await backend.clear()
    assert await backend.get("k2") is None


async def test_ttl_is_honored_by_the_clock_sqlite(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    db = SQLiteBackend(tmp_path / "cache.db", clock=clock)
    await db.set("short", b"x", 0.15)
    await db.set("long", b"y", 60)
    clock.advance(0.14)
    assert await db.get("short") == b"x"
    clock.advance(0.02)
    assert await db.get("short") is None
    assert await db.get("long") == b"y"
    await db.aclose()


async def test_ttl_is_honored_by_redis(redis_server: RedisServer) -> None:
    # Redis expires keys by its own clock, in another process: poll for it.
    db = RedisBackend(redis_server.url, prefix=f"t-{uuid.uuid4().hex[:8]}:")
    await db.set("short", b"x", 0.15)
    await db.set("long", b"y", 60)
    assert await db.get("short") == b"x"

    async def gone() -> bool:
        return await db.get("short") is None

    await wait_until(gone, timeout_s=3.0, what="the short key expired")
    assert await db.get("long") == b"y"
    await db.clear()
    await db.aclose()


async def test_sqlite_purges_expired_rows_and_survives_reopening(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    path = tmp_path / "sub" / "c.db"
    db = SQLiteBackend(path, clock=clock, purge_every=3)
    await db.set("a", b"1", 10)
    await db.set("b", b"2", None)
    clock.now += 11
    assert await db.get("a") is None
    assert await db.count() == 2  # expired, not yet purged
    await db.set("c", b"3", 10)  # the third write purges
    assert await db.count() == 2
    await db.aclose()
    again = SQLiteBackend(path, clock=clock)
    assert await again.get("b") == b"2"
    assert await again.purge_expired() == 0
    await again.aclose()


async def test_redis_clear_only_touches_its_prefix(redis_server: RedisServer) -> None:
    mine, theirs = (
        RedisBackend(redis_server.url, prefix="mine:"),
        RedisBackend(redis_server.url, prefix="theirs:"),
    )
    await mine.set("k", b"1", None)
    await theirs.set("k", b"2", None)
    await mine.clear()
    assert await mine.get("k") is None
    assert await theirs.get("k") == b"2"
    await theirs.clear()
    await mine.aclose()
    await theirs.aclose()


async def test_redis_down_degrades_to_no_cache(fake: FakeOpenAI) -> None:
    with RedisServer() as server:
        url = server.url
    cache = Cache(RedisBackend(url, socket_connect_timeout=0.5))  # the server is gone
    kw = {"api_key": "sk", "api_base": fake.base_url, "temperature": 0, "cache": cache}
    for _ in range(2):
        answer = await chatgate.acompletion("gpt-4o-mini", [{"role": "user", "content": "x"}], **kw)
        assert answer.content == "echo: x"
        assert not answer.meta.cache_hit
    assert cache.stats.backend_errors >= 2
    await cache.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_cache_layer_over_shared_backends(
    kind: str, fake: FakeOpenAI, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two Cache objects over one store (two processes, in effect): the second one hits."""

    def make() -> Cache:
        if kind == "sqlite":
            return Cache("sqlite", path=tmp_path / "shared.db")
        return Cache("redis", url=redis_server.url, prefix=f"shared-{tmp_path.name}:")

    one, two = make(), make()
    kw = {"api_key": "sk", "api_base": fake.base_url, "seed": 1}
    messages = [{"role": "user", "content": "shared"}]
    first = await chatgate.acompletion("gpt-4o-mini", messages, cache=one, **kw)
    second = await chatgate.acompletion("gpt-4o-mini", messages, cache=two, **kw)
    streamed = await chatgate.acompletion("gpt-4o-mini", messages, cache=two, stream=True, **kw)
    assert streamed.cache_hit
    assert (await streamed.afinal()).content == first.content == second.content
    assert second.meta.cache_hit
    assert len(fake.requests) == 1
    await one.clear()
    for cache in (one, two):
        await cache.aclose()


async def test_anthropic_answers_are_cached_and_replayed() -> None:
    cache = Cache()
    with FakeAnthropic() as fake:
        kw = {"api_key": "sk-ant", "api_base": fake.base_url, "temperature": 0, "cache": cache}
        messages = [{"role": "user", "content": "cache me"}]
        model = "anthropic/claude-sonnet-4-20250514"
        first = await chatgate.acompletion(model, messages, max_tokens=50, **kw)
        second = await chatgate.acompletion(model, messages, max_tokens=50, **kw)
        stream = await chatgate.acompletion(model, messages, max_tokens=50, stream=True, **kw)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert len(fake.requests) == 1
        await chatgate.acompletion(model, messages, max_tokens=51, **kw)  # another limit
        assert len(fake.requests) == 2
    assert second.meta.cache_hit
    assert second.meta.provider == "anthropic"
    assert text == second.content == first.content
    assert first.content
    assert "cache me" in first.content
