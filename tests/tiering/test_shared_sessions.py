"""Tier floors shared through a real redis-server by two Routers (two workers or replicas):
a conversation escalated on one is never served lower on the other; Redis dying mid-way
degrades each to its own memory, counted, without failing a request; and it comes back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio

from chatgate.router import Router
from chatgate.tiering.shared_session import SharedSessionTiers
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.redis_server import RedisServer

HARD = "Refactor this:\n```python\ndef f(xs):\n    return [x for x in xs]\n```\nThen add tests."


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as cheap, FakeOpenAI() as premium:
        yield cheap, premium


def router(fakes: tuple[FakeOpenAI, FakeOpenAI], url: str, namespace: str) -> Router:
    cheap, premium = fakes
    mini = {"model": "openai/gpt-4o-mini", "api_base": cheap.base_url, "api_key": "k"}
    full = {"model": "openai/gpt-4o", "api_base": premium.base_url, "api_key": "k"}
    return Router(
        [{"model_name": "mini", "params": mini}, {"model_name": "full", "params": full}],
        settings={"redis_url": url, "redis_namespace": namespace, "num_retries": 0},
        tiers=[
            {"model_name": "auto", "tiers": ["mini", "full"], "classifier": {"embeddings": "never"}}
        ],
    )


@pytest.fixture
async def pair(
    fakes: tuple[FakeOpenAI, FakeOpenAI], redis_server: RedisServer
) -> AsyncIterator[tuple[Router, Router]]:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    one, two = (
        router(fakes, redis_server.url, namespace),
        router(fakes, redis_server.url, namespace),
    )
    yield one, two
    await one.aclose()
    await two.aclose()


async def test_a_session_escalated_on_one_router_is_never_served_lower_on_the_other(
    pair: tuple[Router, Router], redis_server: RedisServer
) -> None:
    one, two = pair
    assert (await two.acompletion("auto", ask("thanks"), user="u1")).meta.tier == "mini"
    assert (await one.acompletion("auto", ask(HARD), user="u1")).meta.tier == "full"
    again = await two.acompletion("auto", ask("thanks"), user="u1")
    assert (again.meta.tier, again.meta.tier_score) == ("full", None)  # the floor, from Redis
    assert (await two.acompletion("auto", ask("thanks"), user="u2")).meta.tier == "mini"
    # the key holds a hash of the session, not the user id, and expires
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        keys = [k.decode() async for k in client.scan_iter("chatgate:tier:*")]
        mine = [k for k in keys if one.settings.redis_namespace in k]
        assert len(mine) == 2
        assert not any("u1" in k.rsplit(":", 1)[1] for k in mine)
        for key in mine:
            assert 0 < await client.pttl(key) <= 3_600_000
    finally:
        await client.aclose()


async def test_the_floor_is_raised_only_when_higher_even_when_racing(
    redis_server: RedisServer,
) -> None:
    """Two processes recording at once: the higher tier stays, whatever the order."""
    from chatgate.tiering.session import SessionTiers

    namespace = f"t{uuid.uuid4().hex[:8]}"
    floors = [
        SharedSessionTiers(
            redis_server.url,
            model="auto",
            namespace=namespace,
            local=SessionTiers(60, 10),
            ttl_s=60,
        )
        for _ in range(2)
    ]
    try:
        for n in range(20):
            session = f"s{n}"
            await asyncio.gather(floors[0].areached(session, 2), floors[1].areached(session, 1))
            await floors[1].areached(session, 0)
            fresh = SharedSessionTiers(
                redis_server.url,
                model="auto",
                namespace=namespace,
                local=SessionTiers(60, 10),
                ttl_s=60,
            )
            assert await fresh.afloor(session) == 2  # from Redis: its memory is empty
            await fresh.aclose()
    finally:
        for floor in floors:
            await floor.aclose()


async def test_redis_killed_mid_way_degrades_to_memory_without_failing_requests(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    with RedisServer() as server:
        one, two = router(fakes, server.url, "kill"), router(fakes, server.url, "kill")
        try:
            assert (await one.acompletion("auto", ask(HARD), user="u1")).meta.tier == "full"
            assert (await two.acompletion("auto", ask("thanks"), user="u1")).meta.tier == "full"
            server.stop()
            # every request is still answered; each process keeps the floors it has seen
            assert (await one.acompletion("auto", ask("thanks"), user="u1")).meta.tier == "full"
            assert (await two.acompletion("auto", ask("thanks"), user="u1")).meta.tier == "full"
            assert (await two.acompletion("auto", ask("thanks"), user="u3")).meta.tier == "mini"
            sessions = two.tiered["auto"].sessions
            assert isinstance(sessions, SharedSessionTiers)
            assert sessions.degraded
            assert sessions.fallbacks >= 2
            # a stream too
            stream = await one.acompletion("auto", ask("thanks"), user="u4", stream=True)
            assert [c async for c in stream]
            server.start()  # an empty Redis on the same port
            await asyncio.sleep(1.1)  # retry_s passes
            assert (await one.acompletion("auto", ask(HARD), user="u5")).meta.tier == "full"
            assert not one.tiered["auto"].sessions.degraded  # type: ignore[attr-defined]
            assert (await two.acompletion("auto", ask("thanks"), user="u5")).meta.tier == "full"
        finally:
            await one.aclose()
            await two.aclose()


async def test_a_redis_error_on_a_session_key_serves_from_memory(
    pair: tuple[Router, Router], redis_server: RedisServer
) -> None:
    """Someone overwrote a session's key with a list: the floor comes from this process's
    memory, counted, and the request is answered."""
    one, _ = pair
    sessions = one.tiered["auto"].sessions
    assert isinstance(sessions, SharedSessionTiers)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await client.rpush(sessions.key("u9"), "not a tier")
        assert (await one.acompletion("auto", ask(HARD), user="u9")).meta.tier == "full"
        assert (await one.acompletion("auto", ask("thanks"), user="u9")).meta.tier == "full"
        assert sessions.fallbacks >= 2
        assert not sessions.degraded  # Redis itself answers: no outage
    finally:
        await client.aclose()
