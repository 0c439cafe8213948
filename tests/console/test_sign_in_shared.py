"""The sign-in limit counted in Redis: two gateways (two workers' worth of processes) sharing
one database and a real redis-server give an address five tries in all, not five each; with
Redis gone each counts on its own again, and a sign-in neither waits nor fails for it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.console.conftest import MASTER
from tests.console.test_sign_in_limit import sign_in
from tests.fakes.gateway import Gateway, start_gateway
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def pair(
    upstream: FakeOpenAI, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Gateway]]:
    tmp = tmp_path_factory.mktemp("shared-sign-in")
    params = {"api_base": upstream.base_url, "api_key": "sk-upstream-sign-in-4"}
    config = {
        "model_list": [{"model_name": "fast", "params": {"model": "openai/gpt-4o-mini", **params}}],
        "router_settings": {"redis_url": redis.url, "redis_namespace": uuid.uuid4().hex},
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp / 'g.db'}"},
    }
    with start_gateway(config, tmp) as one, start_gateway(config, tmp) as two:
        yield one, two


def test_an_address_gets_five_tries_across_both_gateways(pair: tuple[Gateway, Gateway]) -> None:
    one, two = pair
    attacker = "127.0.0.31"
    statuses = [sign_in(gw, attacker, f"wrong-{n}").status for n, gw in enumerate([one, two] * 2)]
    assert statuses == [401] * 4
    assert sign_in(one, attacker, "wrong-4").status == 401  # the fifth locks it, everywhere
    refused = sign_in(two, attacker, MASTER)
    assert refused.status == 429, refused.data
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert sign_in(one, attacker, MASTER).status == 429
    assert sign_in(two, "127.0.0.32", MASTER).status == 200  # another address is not locked


def test_a_right_key_starts_the_address_over_everywhere(pair: tuple[Gateway, Gateway]) -> None:
    one, two = pair
    source = "127.0.0.33"
    for n in range(4):
        assert sign_in(one, source, f"wrong-{n}").status == 401
    assert sign_in(two, source, MASTER).status == 200
    for n in range(4):  # four more: the count began again
        assert sign_in(one, source, f"again-{n}").status == 401
    assert sign_in(two, source, MASTER).status == 200


def test_with_redis_down_each_gateway_counts_on_its_own(
    pair: tuple[Gateway, Gateway], redis: RedisServer
) -> None:
    one, two = pair
    source = "127.0.0.34"
    redis.stop()
    try:
        began = time.monotonic()
        for n in range(5):
            assert sign_in(one, source, f"wrong-{n}").status == 401
        assert time.monotonic() - began < 10  # no wait on the missing Redis
        assert sign_in(one, source, MASTER).status == 429
        assert sign_in(two, source, MASTER).status == 200  # its own count: none yet
    finally:
        redis.start()
