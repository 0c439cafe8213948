"""Two Routers on one real Redis (what two workers or instances are): one RPM limit in total,
one cooldown seen by both. With MemoryState each would allow the limit and try the deployment."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatgate import Router
from chatgate.errors import AuthenticationError, DeploymentDisabledError, RateLimitError
from chatgate.router import RedisState
from tests.clock import wait_until
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json
from tests.fakes.redis_server import RedisServer

HI = [{"role": "user", "content": "hi"}]


def entry(name: str, fake: FakeOpenAI, **params: Any) -> dict[str, Any]:
    return {
        "model_name": name,
        "params": {
            "model": "openai/gpt-4o-mini",
            "api_key": "sk-test",
            "api_base": fake.base_url,
            **params,
        },
    }


@pytest.fixture
async def pair(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Any]:
    """A function that makes two Routers on one fresh namespace: one from a config file (the
    Redis address as LiteLLM spells it, through os.environ/), one from arguments."""
    made: list[Router] = []
    namespace = uuid.uuid4().hex

    def make(model_list: list[dict[str, Any]], **settings: Any) -> tuple[Router, Router]:
        path = tmp_path / "router.yaml"
        routing = {
            "redis_host": "os.environ/CG_TEST_REDIS_HOST",
            "redis_port": "os.environ/CG_TEST_REDIS_PORT",
            "redis_namespace": namespace,
            **settings,
        }
        path.write_text(yaml.safe_dump({"model_list": model_list, "router_settings": routing}))
        env = {"CG_TEST_REDIS_HOST": "127.0.0.1", "CG_TEST_REDIS_PORT": str(redis_server.port)}
        first = Router.from_config(path, env=env)
        shared = {"redis_url": redis_server.url, "redis_namespace": namespace}
        second = Router(model_list, settings={**shared, **settings})
        made.extend([first, second])
        return first, second

    yield make
    for router in made:
        await router.aclose()


async def test_a_deployment_rpm_limit_holds_in_total_across_two_routers(
    fake: FakeOpenAI, pair: Any
) -> None:
    first, second = pair([entry("solo", fake, rpm=3)], limit_wait=0)
    assert isinstance(first.state, RedisState)
    assert isinstance(second.state, RedisState)
    calls = [(first if i % 2 else second).acompletion("solo", HI) for i in range(8)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    answered = [r for r in results if not isinstance(r, BaseException)]
    limited = [r for r in results if isinstance(r, RateLimitError)]
    assert (len(answered), len(limited)) == (3, 5), results
    assert len(fake.requests) == 3
    assert "solo#0" in str(limited[0])  # the message names the deployment and its state


async def test_a_cooldown_set_by_one_router_is_seen_by_the_other(pair: Any) -> None:
    with FakeOpenAI() as bad, FakeOpenAI() as good:
        bad.script(Reply(status=401, json=error_json("bad key", "invalid_api_key")))
        first, second = pair(
            [entry("smart", bad), entry("smart", good)], routing_strategy="round-robin"
        )
        with pytest.raises(AuthenticationError):
            await first.acompletion("smart", HI)  # round-robin starts at smart#0: the bad one
        for _ in range(4):  # the second's round-robin also starts there, but it is cooling
            answer = await second.acompletion("smart", HI)
            assert answer.meta.deployment == "smart#1"
        assert len(bad.requests) == 1
        [stats, _] = await second.state.view(["smart#0", "smart#1"], second.now())
        assert stats.last_error == "AuthenticationError"
        assert stats.cooldown_until > second.now()


async def test_a_deployment_disabled_by_one_router_fails_fast_in_the_other(pair: Any) -> None:
    with FakeOpenAI() as bad:
        bad.script(Reply(status=401, json=error_json("bad key", "invalid_api_key")))
        first, second = pair([entry("solo", bad)], cooldown_time=60, timeout=30)
        with pytest.raises(AuthenticationError):
            await first.acompletion("solo", HI)
        for stream in (False, True):
            started = time.monotonic()
            with pytest.raises(DeploymentDisabledError, match=r"rejected its credentials \(401\)"):
                await second.acompletion("solo", HI, stream=stream)
            assert time.monotonic() - started < 0.5
        assert len(bad.requests) == 1


def test_the_blocking_api_shares_state_too(fake: FakeOpenAI, redis_server: RedisServer) -> None:
    """The sync API runs on chatgate's own loop thread: a client of its own, the same state."""
    namespace = uuid.uuid4().hex
    settings = {"redis_url": redis_server.url, "redis_namespace": namespace, "limit_wait": 0}
    blocking = Router([entry("solo", fake, rpm=2)], settings=settings)
    other = Router([entry("solo", fake, rpm=2)], settings=settings)
    try:
        assert blocking.completion("solo", HI).content == "echo: hi"
        assert asyncio.run(_one(other)) == "echo: hi"
        with pytest.raises(RateLimitError):
            blocking.completion("solo", HI)
        assert len(fake.requests) == 2
    finally:
        blocking.close()


async def _one(router: Router) -> str | None:
    """One call on a loop of its own, then its connection closed before that loop ends."""
    answer = await router.acompletion("solo", HI)
    await router.aclose()
    return answer.content  # type: ignore[no-any-return]


async def test_a_waiting_call_gets_a_slot_freed_in_another_router(pair: Any) -> None:
    """max_parallel_requests across routers: the slot frees in the other one, which wakes
    nobody here; the waiting call finds it by looking again, long before limit_wait."""
    with FakeOpenAI() as slow:
        slow.script(Reply(delay_s=0.3, json=completion_json("first")))
        first, second = pair([entry("g", slow, max_parallel_requests=1)], limit_wait=3)
        holding = asyncio.create_task(first.acompletion("g", HI))
        await wait_until(lambda: len(slow.requests) == 1, what="the first router holds the slot")
        started = time.monotonic()
        answer = await second.acompletion("g", HI)
        assert time.monotonic() - started < 1.0
        assert answer.content == "echo: hi"
        assert (await holding).content == "first"
