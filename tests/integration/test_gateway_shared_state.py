"""Two real `chatgate serve` instances on one Redis and one key database: a virtual key's RPM
limit holds in total across them; when Redis stops, readiness says so and requests are still
served (limits per process meanwhile, counted in /metrics); when it is back, so is readiness."""

from __future__ import annotations

import contextlib
import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.redis_server import RedisServer
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-shared-state-7"
CHAT = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(scope="module")
def redis_for_gateways() -> Iterator[RedisServer]:
    """Its own server: a test here stops it."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateways(
    redis_for_gateways: RedisServer, upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Gateway]]:
    config = gateway_config(
        deployment("fast", upstream),
        master_key=MASTER,
        database=SQLITE,  # in one folder: one file for both
        router={"redis_host": "127.0.0.1", "redis_port": "os.environ/CG_TEST_REDIS_PORT"},
        key_cache_ttl_s=0,
    )
    env = {"CG_TEST_REDIS_PORT": str(redis_for_gateways.port)}
    tmp = tmp_path_factory.mktemp("shared")
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(serve(config, tmp, env=env)) for _ in range(2)]


def chat(gw: Gateway, key: str) -> tuple[int, Any]:
    return request_json(f"{gw.url}/v1/chat/completions", body=CHAT, key=key)


def readiness(gw: Gateway) -> tuple[int, Any]:
    return request_json(f"{gw.url}/health/readiness", method="GET")


def fallbacks(gw: Gateway) -> float:
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r"^chatgate_shared_state_fallbacks_total (\S+)$", text, re.M)
    assert found is not None, "no chatgate_shared_state_fallbacks_total in /metrics"
    return float(found.group(1))


def test_a_key_rpm_limit_holds_in_total_across_two_instances(gateways: list[Gateway]) -> None:
    key = gateways[0].new_key(rpm=3)
    statuses = []
    for i in range(6):
        status, body = chat(gateways[i % 2], key)
        statuses.append(status)
        if status == 429:
            assert body["error"]["code"] == "rate_limit_exceeded"
    assert statuses == [200, 200, 200, 429, 429, 429]  # per process it would be 3 each
    for gw in gateways:
        status, body = readiness(gw)
        assert (status, body["checks"]["shared_state"]) == (200, {"ok": True})


def test_redis_down_fails_readiness_but_requests_are_served(
    gateways: list[Gateway], redis_for_gateways: RedisServer
) -> None:
    first, _ = gateways
    key = first.new_key(rpm=2)
    before = fallbacks(first)
    redis_for_gateways.stop()  # the real server stops
    try:
        status, body = readiness(first)
        assert status == 503
        assert body["checks"]["shared_state"]["ok"] is False
        assert [chat(first, key)[0] for _ in range(3)] == [200, 200, 429]  # limits per process
        assert fallbacks(first) > before
        assert "Redis unavailable" in first.log_text()
    finally:
        redis_for_gateways.start()
    assert readiness(first)[0] == 200
