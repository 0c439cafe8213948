"""RouterState: cooldowns, half-open probes, token buckets, parallel limits, on a driven clock.

Every test runs against MemoryState and against RedisState on a real redis-server: the two
must behave the same. (Times come back from Redis through the clock offset, so they compare
with approx.)
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator

import pytest

from chatgate.router.redis_state import RedisState
from chatgate.router.state import Health, Limits, MemoryState, RouterState
from tests.fakes.redis_server import RedisServer

HEALTH = Health(allowed_fails=3, window=10.0, cooldown=30.0)
FREE = Limits()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.server)])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[RouterState]:
    if request.param == "memory":
        yield MemoryState()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    fallbacks: list[int] = []
    shared = RedisState(
        server.url, namespace=uuid.uuid4().hex, on_fallback=lambda: fallbacks.append(1)
    )
    yield shared
    await shared.aclose()
    assert not fallbacks, "RedisState answered from memory: the test did not test Redis"


async def test_failures_within_the_window_cool_a_deployment_down(state: RouterState) -> None:
    assert await state.record_failure("a", "InternalServerError", HEALTH, 0.0) is None
    assert await state.record_failure("a", "InternalServerError", HEALTH, 1.0) is None
    until = await state.record_failure("a", "InternalServerError", HEALTH, 2.0)
    assert until == pytest.approx(32.0)
    [stats] = await state.view(["a"], 5.0)
    assert stats.cooldown_until == pytest.approx(32.0)
    assert stats.last_error == "InternalServerError"
    assert await state.reserve("a", FREE, 0, 5.0) == pytest.approx(27.0)


async def test_failures_older_than_the_window_do_not_count(state: RouterState) -> None:
    await state.record_failure("a", "E", HEALTH, 0.0)
    await state.record_failure("a", "E", HEALTH, 1.0)
    assert await state.record_failure("a", "E", HEALTH, 11.5) is None  # the first two expired
    [stats] = await state.view(["a"], 11.5)
    assert stats.cooldown_until == 0.0


async def test_success_clears_the_failure_count(state: RouterState) -> None:
    await state.record_failure("a", "E", HEALTH, 0.0)
    await state.record_failure("a", "E", HEALTH, 1.0)
    await state.record_success("a", 0.1, 1.5)
    assert await state.record_failure("a", "E", HEALTH, 2.0) is None


async def test_cool_for_starts_a_cooldown_at_once(state: RouterState) -> None:
    until = await state.record_failure("a", "RateLimitError", HEALTH, 100.0, cool_for=2.5)
    assert until == pytest.approx(102.5)


async def test_half_open_lets_one_probe_through_and_a_failed_probe_cools_again(
    state: RouterState,
) -> None:
    await state.record_failure("a", "E", HEALTH, 0.0, cool_for=5.0)
    [stats] = await state.view(["a"], 6.0)
    assert stats.half_open
    assert stats.cooldown_until == 0.0
    assert await state.reserve("a", FREE, 0, 6.0) == 0.0  # the probe
    assert math.isinf(await state.reserve("a", FREE, 0, 6.1))  # nobody else meanwhile
    assert await state.record_failure("a", "E", HEALTH, 6.2) == pytest.approx(36.2)  # one fail
    await state.release("a", FREE, 0, 6.2)
    [stats] = await state.view(["a"], 40.0)
    assert stats.half_open
    assert await state.reserve("a", FREE, 0, 40.0) == 0.0
    await state.record_success("a", 0.2, 40.1)
    await state.release("a", FREE, 0, 40.1)
    [stats] = await state.view(["a"], 40.1)
    assert not stats.half_open
    assert not stats.probing
    assert await state.reserve("a", FREE, 0, 40.1) == 0.0
    assert await state.reserve("a", FREE, 0, 40.1) == 0.0  # healthy: no limit on requests


async def test_rpm_bucket_refills_over_a_minute(state: RouterState) -> None:
    limits = Limits(rpm=2)
    assert await state.reserve("a", limits, 0, 0.0) == 0.0
    assert await state.reserve("a", limits, 0, 0.0) == 0.0
    assert await state.reserve("a", limits, 0, 0.0) == pytest.approx(30.0)
    assert await state.reserve("a", limits, 0, 30.0) == 0.0
    [stats] = await state.view(["a"], 30.0)
    assert stats.rpm_left == pytest.approx(0.0)
    assert stats.in_flight == 3


async def test_tpm_reservation_is_corrected_by_actual_usage(state: RouterState) -> None:
    limits = Limits(tpm=1000)
    assert await state.reserve("a", limits, 800, 0.0) == 0.0
    assert await state.reserve("a", limits, 800, 0.0) == pytest.approx(36.0)  # 600 missing
    await state.release("a", limits, -700, 0.0)  # it used 100, not 800
    [stats] = await state.view(["a"], 0.0)
    assert stats.tpm_left == pytest.approx(900.0)
    assert await state.reserve("a", limits, 800, 0.0) == 0.0


async def test_max_parallel_limits_in_flight_requests(state: RouterState) -> None:
    limits = Limits(max_parallel=1)
    assert await state.reserve("a", limits, 0, 0.0) == 0.0
    assert math.isinf(await state.reserve("a", limits, 0, 0.0))
    await state.release("a", limits, 0, 0.1)
    assert await state.reserve("a", limits, 0, 0.1) == 0.0


async def test_latency_is_an_ewma(state: RouterState) -> None:
    await state.record_success("a", 1.0, 0.0)
    await state.record_success("a", 2.0, 0.0)
    [stats] = await state.view(["a"], 0.0)
    assert stats.latency_s == pytest.approx(1.3)
    assert stats.samples == 2


async def test_changed_limits_take_effect_at_once(state: RouterState) -> None:
    assert await state.reserve("k", Limits(rpm=4), 0, 0.0) == 0.0
    assert await state.reserve("k", Limits(rpm=4), 0, 0.0) == 0.0
    [stats] = await state.view(["k"], 0.0)
    assert stats.rpm_left == pytest.approx(2.0)
    assert await state.reserve("k", Limits(rpm=1), 0, 0.0) == 0.0  # lowered: 2 left, capped to 1
    assert await state.reserve("k", Limits(rpm=1), 0, 0.0) == pytest.approx(60.0)
    assert await state.reserve("k", Limits(tpm=100), 50, 0.0) == 0.0  # RPM limit removed
    [stats] = await state.view(["k"], 0.0)
    assert stats.rpm_left is None
    assert stats.tpm_left == pytest.approx(50.0)


async def test_an_ended_cooldown_is_half_open_even_unseen(state: RouterState) -> None:
    await state.record_failure("a", "E", HEALTH, 0.0, cool_for=5.0)
    # no view in between: the failure at 6.0 is still the failed probe of a half-open deployment
    assert await state.record_failure("a", "E", HEALTH, 6.0) == pytest.approx(36.0)


async def test_view_keeps_the_order_and_knows_nothing_of_unseen_ids(state: RouterState) -> None:
    await state.record_success("b", 0.5, 0.0)
    await state.record_failure("c", "APITimeoutError", HEALTH, 0.0)
    a, b, c = await state.view(["a", "b", "c"], 1.0)
    assert (a.latency_s, a.samples, a.in_flight, a.last_error, a.rpm_left) == (
        None,
        0,
        0,
        None,
        None,
    )
    assert (b.latency_s, b.samples) == (pytest.approx(0.5), 1)
    assert c.last_error == "APITimeoutError"
    assert c.cooldown_until == 0.0


async def test_a_cooldown_keeps_the_reason_that_set_its_end(state: RouterState) -> None:
    await state.record_failure("a", "AuthenticationError", HEALTH, 1.0, cool_for=30.0)
    # a request that was in flight fails meanwhile: counted, but the cooldown is the 401's
    await state.record_failure("a", "APITimeoutError", HEALTH, 2.0, cool_for=5.0)
    [stats] = await state.view(["a"], 3.0)
    assert (stats.cooldown_reason, stats.last_error) == ("AuthenticationError", "APITimeoutError")
    assert stats.cooled_at == pytest.approx(1.0)
    await state.record_failure("a", "RateLimitError", HEALTH, 4.0, cool_for=60.0)  # ends later
    [stats] = await state.view(["a"], 5.0)
    assert (stats.cooldown_reason, stats.cooled_at) == ("RateLimitError", pytest.approx(4.0))
    [stats] = await state.view(["a"], 64.5)  # over: half-open, no reason left
    assert (stats.cooldown_until, stats.cooldown_reason, stats.half_open) == (0.0, None, True)
