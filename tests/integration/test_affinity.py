"""Cache-aware routing (router/affinity.py) through a real Router and two fake OpenAI
upstreams: the turns of a conversation whose prefix is long enough to be cached go to the
deployment that served the earlier turns; short prompts and new conversations are spread by
the strategy; a warm deployment that cools down or reaches its limit is passed over; the
setting turns it off; two Routers on one Redis share what each learned, and while Redis is
down each keeps its own; and OpenAI's ``prompt_cache_key`` reaches an OpenAI backend."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from chatgate import Router
from chatgate.router import RedisState
from chatgate.router.affinity import RedisAffinity
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json
from tests.fakes.redis_server import RedisServer

SYSTEM = "You are the support agent of a large online shop. " * 120  # ~1,500 tokens


def conversation(tag: str, turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"{tag}: question {i}"})
        messages.append({"role": "assistant", "content": f"{tag}: answer {i}"})
    messages.append({"role": "user", "content": f"{tag}: question {turns}"})
    return messages


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as a, FakeOpenAI() as b:
        yield a, b


def model_list(a: FakeOpenAI, b: FakeOpenAI, **params: Any) -> list[dict[str, Any]]:
    return [
        {
            "model_name": "chat",
            "params": {"model": "openai/gpt-4o", "api_key": "k", "api_base": f.base_url, **params},
            "model_info": {"id": name},
        }
        for name, f in (("a", a), ("b", b))
    ]


async def served(router: Router, messages: list[dict[str, Any]], **kw: Any) -> str:
    response = await router.acompletion("chat", messages, **kw)
    deployment = response.meta.deployment
    assert isinstance(deployment, str)
    return deployment


async def test_every_turn_of_a_conversation_goes_where_the_first_went(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    router = Router(model_list(*upstreams), rng=random.Random(7))
    firsts = {}
    for c in range(12):
        firsts[c] = await served(router, conversation(f"c{c}", 0))
    assert set(firsts.values()) == {"a", "b"}  # new conversations are still spread
    for turn in range(1, 5):
        for c in range(12):
            assert await served(router, conversation(f"c{c}", turn)) == firsts[c], (c, turn)


async def test_without_affinity_the_turns_are_spread(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    router = Router(
        model_list(*upstreams), settings={"cache_affinity": False}, rng=random.Random(7)
    )
    firsts = [await served(router, conversation(f"c{c}", 0)) for c in range(12)]
    moved = 0
    for c in range(12):
        moved += await served(router, conversation(f"c{c}", 1)) != firsts[c]
    assert moved >= 3  # simple-shuffle between two: about half move


async def test_a_short_prompt_is_not_steered(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    router = Router(model_list(*upstreams), rng=random.Random(3))
    short = [{"role": "user", "content": "hi"}]
    assert len({await served(router, short) for _ in range(20)}) == 2


async def test_a_cooling_warm_deployment_is_passed_over(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = upstreams
    settings = {"cooldown_time": 60, "allowed_fails": 1}
    router = Router(model_list(a, b), settings=settings, rng=random.Random(1))
    first = await served(router, conversation("x", 0))
    warm, other = (a, b) if first == "a" else (b, a)
    warm.script(Reply(status=500, json=error_json("boom", "server_error")))
    # the warm one fails (and cools down): the retry goes to the other
    assert await served(router, conversation("x", 1)) != first
    # while it cools, the conversation stays where it was answered
    for turn in range(2, 5):
        assert await served(router, conversation("x", turn)) != first
    assert (len(warm.requests), len(other.requests)) == (2, 4)


async def test_a_failed_attempt_does_not_make_a_deployment_warm(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = upstreams
    router = Router(model_list(a, b), rng=random.Random(1))  # one failure cools nothing
    first = await served(router, conversation("f", 0))
    warm, other = (a, b) if first == "a" else (b, a)
    warm.script(Reply(status=500, json=error_json("boom", "server_error")))
    second = await served(router, conversation("f", 1))
    assert second != first
    # the conversation so far was answered by the other one only: it stays there
    for turn in range(2, 6):
        assert await served(router, conversation("f", turn)) == second
    assert (len(warm.requests), len(other.requests)) == (2, 5)


async def test_a_warm_deployment_at_its_limit_is_passed_over(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    router = Router(model_list(*upstreams, rpm=2), settings={"limit_wait": 0})
    first = await served(router, conversation("y", 0))
    assert await served(router, conversation("y", 1)) == first  # its second request this minute
    assert await served(router, conversation("y", 2)) != first  # its RPM is spent: the other


async def test_the_longest_known_prefix_wins(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    router = Router(model_list(*upstreams), rng=random.Random(11))
    # both deployments are warm for the system prompt after a few conversations ...
    seen = {await served(router, conversation(f"s{c}", 0)) for c in range(10)}
    assert seen == {"a", "b"}
    # ... and a conversation's own turns are on one of them only: that one wins every time
    first = await served(router, conversation("long", 3))
    for _ in range(6):
        assert await served(router, conversation("long", 4)) == first


async def test_prompt_cache_key_reaches_an_openai_backend(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = upstreams
    router = Router(model_list(a, b))
    await router.acompletion("chat", conversation("k", 0), prompt_cache_key="thread-42")
    [received] = a.requests + b.requests
    assert received.body["prompt_cache_key"] == "thread-42"


# -- shared through Redis -----------------------------------------------------------------------


@pytest.fixture
async def pair(
    redis_server: RedisServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> AsyncIterator[tuple[Router, Router]]:
    shared = {"redis_url": redis_server.url, "redis_namespace": uuid.uuid4().hex}
    first = Router(model_list(*upstreams), settings=shared, rng=random.Random(5))
    second = Router(model_list(*upstreams), settings=shared, rng=random.Random(6))
    yield first, second
    await first.aclose()
    await second.aclose()


async def keys_of(redis_server: RedisServer, router: Router, least: int) -> list[bytes]:
    """The affinity keys of ``router``'s namespace, once at least ``least`` are written (the
    write goes off the request's path)."""
    import redis.asyncio

    pattern = f"chatgate:rs:{{{router.settings.redis_namespace}}}:pa:chat:*"
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        for _ in range(200):
            keys = [k async for k in client.scan_iter(pattern)]
            if len(keys) >= least:
                return keys
            await asyncio.sleep(0.01)
        return keys
    finally:
        await client.aclose()


async def test_two_routers_on_one_redis_share_affinity(
    redis_server: RedisServer, pair: tuple[Router, Router]
) -> None:
    first, second = pair
    assert isinstance(first._runners["chat"].affinity.store, RedisAffinity)
    started = {c: await served(first, conversation(f"r{c}", 0)) for c in range(8)}
    assert set(started.values()) == {"a", "b"}
    assert len(await keys_of(redis_server, first, 8)) == 8  # one per conversation
    for c in range(8):
        # the other router never saw these conversations: it learned where they are from Redis
        assert await served(second, conversation(f"r{c}", 1)) == started[c], c


async def test_affinity_lives_under_the_namespace_and_expires(
    redis_server: RedisServer, pair: tuple[Router, Router]
) -> None:
    import redis.asyncio

    first, _ = pair
    await served(first, conversation("ttl", 0))
    keys = await keys_of(redis_server, first, 1)
    assert len(keys) == 1  # the whole first request
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        ttl = await client.pttl(keys[0])
    finally:
        await client.aclose()
    assert 0 < ttl <= 600_000


async def test_while_redis_is_down_each_process_keeps_its_own(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    with RedisServer() as server:
        settings = {"redis_url": server.url, "redis_namespace": uuid.uuid4().hex}
        router = Router(model_list(*upstreams), settings=settings, rng=random.Random(2))
        try:
            first = await served(router, conversation("down", 0))
            await keys_of(server, router, 1)
            server.stop()
            for turn in range(1, 5):  # answered (failure "open"), and still where it began
                assert await served(router, conversation("down", turn)) == first
            assert isinstance(router.state, RedisState)
            assert router.state.degraded
        finally:
            await router.aclose()


async def test_a_redis_error_in_affinity_never_fails_the_call(
    redis_server: RedisServer, pair: tuple[Router, Router]
) -> None:
    import redis.asyncio

    from chatgate.router.affinity import prefix_hashes
    from chatgate.types import ChatRequest

    first, _ = pair
    messages = conversation("wrongtype", 0)
    [*_, whole] = prefix_hashes(ChatRequest(model="chat", messages=messages), 1024)  # type: ignore[arg-type]
    key = f"chatgate:rs:{{{first.settings.redis_namespace}}}:pa:chat:{whole}"
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await client.set(key, "not a hash")  # HGETALL and HSET on it: WRONGTYPE
        assert await served(first, messages) in ("a", "b")
        assert await served(first, messages) in ("a", "b")
    finally:
        await client.aclose()
