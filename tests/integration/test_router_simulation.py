"""Simulation: three deployments, one hard down and one flapping, 10,000 requests."""

from __future__ import annotations

import asyncio
import random
import time

from chatgate import Router
from chatgate.errors import ChatgateError
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json
from tests.integration.test_router import HI, dead_base, entry

REQUESTS = 10_000
CONCURRENCY = 32
DEADLINE_S = 5.0


def flapping(rng: random.Random, n: int) -> list[Reply]:
    """Bursts of 500s and resets between stretches of good answers."""
    replies = []
    while len(replies) < n:
        good = rng.randint(5, 60)
        replies += [Reply(json=completion_json("flap ok"))] * good
        bad = rng.randint(1, 8)
        replies += [Reply(status=500, json=error_json("flap", "server_error"))] * bad
    return replies


async def test_three_deployments_one_down_one_flapping() -> None:
    rng = random.Random(20261121)
    with FakeOpenAI() as flappy, FakeOpenAI() as healthy:
        flappy.script(*flapping(rng, REQUESTS))
        router = Router(
            [entry("g", dead_base()), entry("g", flappy), entry("g", healthy)],
            routing_strategy="simple-shuffle",
            num_retries=3,
            timeout=DEADLINE_S,
            cooldown_time=0.5,
            allowed_fails=2,
            settings={"retry_base_delay": 0.005, "retry_max_delay": 0.05},
            rng=random.Random(7),
        )
        ok = failed = 0
        worst = 0.0
        queue = iter(range(REQUESTS))

        async def worker() -> None:
            nonlocal ok, failed, worst
            for _ in queue:
                started = time.monotonic()
                try:
                    await router.acompletion("g", HI)
                    ok += 1
                except ChatgateError:
                    failed += 1
                worst = max(worst, time.monotonic() - started)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    assert ok + failed == REQUESTS
    assert ok / REQUESTS >= 0.999, f"{failed} of {REQUESTS} failed"
    assert worst <= DEADLINE_S + 0.1
    assert len(flappy.requests) > 100  # it really was in the rotation
