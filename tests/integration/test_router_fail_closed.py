"""``shared_state_failure: closed`` against a real redis-server that is killed, frozen and
restarted: routed calls are refused with SharedStateUnavailableError and reach no upstream,
calls already in flight keep their answers, and everything comes back without a restart."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest

from chatgate import Router
from chatgate.errors import NoDeploymentAvailableError, SharedStateUnavailableError
from chatgate.router import RedisState
from chatgate.router.state import Health, Limits
from tests.clock import ManualClock, wait_until
from tests.fakes.gateway import free_port
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json
from tests.fakes.redis_server import RedisServer
from tests.integration.test_router import HI, entry


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "chatgate.router" and r.levelno == logging.WARNING
    ]


async def until_served(router: Router, timeout_s: float = 3.0) -> Any:
    """Call until the router serves again (it tries Redis once every retry_s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await router.acompletion("smart", HI)
        except SharedStateUnavailableError:
            assert time.monotonic() < deadline, "the router did not recover"
            await asyncio.sleep(0.05)


async def test_closed_refuses_chat_and_embeddings_while_redis_is_down_then_recovers(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "chatgate.router")
    model_list = [entry("smart", fake), entry("embed", fake, "text-embedding-3-small")]
    with RedisServer() as server:
        settings = {"redis_url": server.url, "shared_state_failure": "closed"}
        router = Router(model_list, settings=settings)
        try:
            assert isinstance(router.state, RedisState)
            assert router.state.failure == "closed"
            assert (await router.acompletion("smart", HI)).content == "echo: hi"
            served = len(fake.requests)
            server.stop()
            started = time.monotonic()
            for _ in range(3):
                with pytest.raises(SharedStateUnavailableError) as info:
                    await router.acompletion("smart", HI)
            with pytest.raises(SharedStateUnavailableError):
                await router.aembedding("embed", ["a"])
            assert time.monotonic() - started < 1.0  # refused at once, not after timeouts
            assert len(fake.requests) == served  # nothing reached the upstream
            error = info.value
            assert isinstance(error, NoDeploymentAvailableError)  # the Router's 503 family
            assert (error.status_code, error.code, error.retryable) == (
                503,
                "shared_state_unavailable",
                True,
            )
            assert error.retry_after is not None
            assert 0 < error.retry_after <= 1.0
            assert "shared_state_failure is 'closed'" in error.message
            [warning] = warnings_of(caplog)  # one line for the outage, not one per call
            assert "Redis unavailable" in warning
            assert "refused" in warning

            server.start()  # an empty Redis on the same port; nothing else restarts
            assert (await until_served(router)).content == "echo: hi"
            assert (await router.aembedding("embed", ["a"])).data
            assert len(warnings_of(caplog)) == 1
            back = [r for r in caplog.records if "Redis is back" in r.getMessage()]
            assert [r.levelno for r in back] == [logging.INFO]
        finally:
            await router.aclose()


async def test_a_call_in_flight_when_redis_dies_keeps_its_answer_and_frees_its_slot() -> None:
    """reserve -> Redis dies -> the answer arrives: recording and releasing do not raise;
    with Redis back the deployment (max_parallel_requests 1) is free again."""
    refusals: list[str] = []
    ns = uuid.uuid4().hex
    with FakeOpenAI() as slow, RedisServer() as server:
        slow.script(Reply(delay_s=0.4, json=completion_json("slow answer")))
        state = RedisState(
            server.url, namespace=ns, failure="closed", retry_s=0.1, on_refusal=refusals.append
        )
        router = Router(
            [entry("smart", slow, max_parallel_requests=1), entry("other", slow)],
            settings={"fallbacks": [{"smart": ["other"]}]},
            state=state,
        )
        try:
            holding = asyncio.create_task(router.acompletion("smart", HI))
            await wait_until(lambda: len(slow.requests) == 1, what="the slot held upstream")
            server.stop()
            with pytest.raises(SharedStateUnavailableError):
                await router.acompletion("smart", HI)
            assert refusals == ["unreachable"]  # once: the fallback group is not tried
            assert (await holding).content == "slow answer"
            assert len(slow.requests) == 1
            server.start()
            answer = await until_served(router)
            assert answer.meta.deployment == "smart#0"
            [stats] = await state.view(["smart#0"], router.now())
            assert stats.in_flight == 0
        finally:
            await state.aclose()


async def test_slots_released_while_redis_is_frozen_stop_counting_when_it_is_back(
    redis_server: RedisServer,
) -> None:
    """Redis unreachable but keeping its data (a partition): releases cannot reach it. Those
    never sent are replayed when it is back, so the slots stop counting then, not when their
    lease runs out (30 s). A reserve whose reply was lost ran once Redis woke up: its slot
    stops counting when the lease it ran under ends, with the last slot held under it."""
    refusals: list[str] = []
    options: dict[str, Any] = {"namespace": uuid.uuid4().hex, "retry_s": 0.1}
    clock = ManualClock()  # when Redis is tried again follows the state's clock
    a = RedisState(
        redis_server.url,
        failure="closed",
        on_refusal=refusals.append,
        socket_timeout=0.2,
        clock=clock,
        **options,
    )
    b = RedisState(redis_server.url, **options)  # another process, on the same state
    two = Limits(max_parallel=2)
    try:
        for id in ("solo", "pair", "pair"):
            assert await a.reserve(id, two, 0, time.monotonic()) == 0.0
        redis_server.pause()
        try:
            with pytest.raises(SharedStateUnavailableError):
                await a.reserve("other", two, 0, time.monotonic())
            started = time.monotonic()
            await a.release("solo", two, 0, time.monotonic())  # dropped, not raised
            await a.release("pair", two, 0, time.monotonic())
            await a.record_success("solo", 0.1, time.monotonic())
            assert await a.record_failure("solo", "E", Health(), time.monotonic()) is None
            assert time.monotonic() - started < 0.1  # no waiting on the frozen server
        finally:
            redis_server.resume()
        assert refusals == ["timeout"]
        with pytest.raises(SharedStateUnavailableError):  # not before retry_s has passed
            await a.view(["solo"], time.monotonic())
        clock.advance(0.15)  # retry_s: the next call tries Redis again
        [solo, pair, other] = await a.view(["solo", "pair", "other"], time.monotonic())
        assert not a.degraded
        assert (solo.in_flight, pair.in_flight) == (0, 1)  # the pair slot still held
        assert other.in_flight == 1  # the refused reserve did run, under that same lease
        await a.release("pair", two, 0, time.monotonic())
        [pair, other] = await b.view(["pair", "other"], time.monotonic())
        assert (pair.in_flight, other.in_flight) == (0, 0)
    finally:
        await a.aclose()
        await b.aclose()


async def test_the_redis_password_is_never_in_a_log_line_or_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:pw-s3cret-9@127.0.0.1:{free_port()}/0"  # nothing listens there
    state = RedisState(url, failure="closed")
    try:
        with pytest.raises(SharedStateUnavailableError) as info:
            await state.view(["d"], time.monotonic())
    finally:
        await state.aclose()
    assert "Redis unavailable" in caplog.text
    assert "s3cret" not in caplog.text
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1" not in str(info.value)  # callers are not told where Redis is
