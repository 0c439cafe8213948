"""RedisState beyond MemoryState's tests: state shared by two processes' worth of clients, keys
that expire, leases that end when a process dies, and Redis going away and coming back."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError, ResponseError

from chatgate.router.redis_state import RedisState
from chatgate.router.state import Health, Limits
from tests.clock import ManualClock
from tests.fakes.redis_server import RedisServer

HEALTH = Health(allowed_fails=3, window=10.0, cooldown=30.0)
ONE = Limits(max_parallel=1)


def now() -> float:
    return time.monotonic()


@pytest.fixture
async def states(redis_server: RedisServer) -> AsyncIterator[list[RedisState]]:
    """Two RedisStates on one namespace: what two processes would hold."""
    ns = uuid.uuid4().hex
    made = [RedisState(redis_server.url, namespace=ns, lease_s=0.5) for _ in range(2)]
    yield made
    for state in made:
        await state.aclose()


async def test_a_slot_and_a_cooldown_taken_by_one_hold_for_the_other(
    states: list[RedisState],
) -> None:
    a, b = states
    assert await a.reserve("d", ONE, 0, now()) == 0.0
    assert math.isinf(await b.reserve("d", ONE, 0, now()))
    [seen] = await b.view(["d"], now())
    assert seen.in_flight == 1
    await a.release("d", ONE, 0, now())
    assert await b.reserve("d", ONE, 0, now()) == 0.0
    until = await a.record_failure("d", "RateLimitError", HEALTH, now(), cool_for=5.0)
    assert until is not None
    [seen] = await b.view(["d"], now())  # b's clock differs from a's; the shared clock does not
    assert seen.cooldown_until == pytest.approx(until, abs=0.01)
    # slack both ways: the two states estimate the shared clock separately, each within ms
    assert 4.0 < await b.reserve("d", Limits(), 0, now()) <= 5.1


async def test_the_heartbeat_keeps_a_long_request_counted_and_aclose_ends_it(
    states: list[RedisState],
) -> None:
    a, b = states
    assert await a.reserve("d", ONE, 0, now()) == 0.0
    # More than two leases (the time passing is what is tested): only the heartbeat keeps a's
    # lease alive.
    await asyncio.sleep(1.2)
    assert math.isinf(await b.reserve("d", ONE, 0, now()))
    await a.aclose()  # its lease ends at once
    assert await b.reserve("d", ONE, 0, now()) == 0.0


class ReplyHolder:
    """A loopback TCP proxy in front of Redis that, once ``hold`` is set, keeps Redis's replies
    from the client: a command still runs at the server, and its answer never arrives, as when
    a call is cancelled with its reply on the wire. (Cancelling a call while the server is
    paused does not do it: the client's disconnect can reach the server first, and the
    command is then never run.)"""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self.hold = False
        self.held = asyncio.Event()  # a reply was kept from the client: its command ran
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        for pump in (self._pump(client_r, redis_w, False), self._pump(redis_r, client_w, True)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, replies: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if replies and self.hold:
                    self.held.set()
                    continue
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    async def aclose(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)


async def test_a_slot_taken_by_a_cancelled_call_lapses_with_a_lease(
    redis_server: RedisServer,
) -> None:
    proxy = ReplyHolder(redis_server.port)
    ns = uuid.uuid4().hex
    lease_s = 1.0
    a = RedisState(await proxy.start(), namespace=ns, lease_s=lease_s)
    b = RedisState(redis_server.url, namespace=ns, lease_s=lease_s)
    try:
        for state in (a, b):  # connected, offset measured, scripts loaded
            await state.reserve("warm", Limits(), 0, now())
            await state.release("warm", Limits(), 0, now())  # (no slot held: no heartbeat)
        proxy.hold = True
        taking = asyncio.create_task(a.reserve("d", ONE, 0, now()))
        await asyncio.wait_for(proxy.held.wait(), 5.0)  # the script ran; its answer is kept
        ran = time.monotonic()
        proxy.hold = False  # for the connections a makes from here on
        taking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await taking
        if time.monotonic() - ran < lease_s * 0.8:  # (a stalled machine may have let it lapse)
            assert math.isinf(await b.reserve("d", ONE, 0, now()))  # a slot nobody releases
        while math.isinf(await b.reserve("d", ONE, 0, now())):
            assert time.monotonic() - ran < lease_s + 2.0, "the cancelled call's slot never lapsed"
            await a.reserve("busy-elsewhere", Limits(), 0, now())  # a lives on, taking slots
            await asyncio.sleep(0.05)
    finally:
        for state in (a, b):
            await state.aclose()
        await proxy.aclose()


HOLDER = """
import asyncio, sys, time
from chatgate.router.redis_state import RedisState
from chatgate.router.state import Health, Limits

async def main() -> None:
    state = RedisState(sys.argv[1], namespace=sys.argv[2], lease_s=0.5)
    await state.record_failure("probed", "E", Health(), time.monotonic(), cool_for=0.01)
    await asyncio.sleep(0.02)
    await state.view(["probed"], time.monotonic())
    assert await state.reserve("probed", Limits(), 0, time.monotonic()) == 0.0  # the probe
    assert await state.reserve("slot", Limits(max_parallel=1), 0, time.monotonic()) == 0.0
    print("holding", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.fixture
def holder(redis_server: RedisServer) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Another process that takes a slot and a half-open probe, then holds them."""
    ns = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_server.url, ns],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "holding"
        yield proc, ns
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_a_dead_process_stops_holding_slots_and_probes_when_its_lease_ends(
    redis_server: RedisServer, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, ns = holder
    state = RedisState(redis_server.url, namespace=ns)
    try:
        # Alive past its first lease (the time passing is what is tested): its heartbeat holds
        # both.
        await asyncio.sleep(0.8)
        slot, probed = await state.view(["slot", "probed"], now())
        assert (slot.in_flight, probed.probing) == (1, True)
        assert math.isinf(await state.reserve("slot", ONE, 0, now()))
        assert math.isinf(await state.reserve("probed", Limits(), 0, now()))
        proc.send_signal(signal.SIGKILL)  # dies mid-request: no release, no aclose
        proc.wait(5)
        killed = time.monotonic()
        while await state.reserve("slot", ONE, 0, now()) != 0.0:
            assert time.monotonic() - killed < 2.0, "the dead process's slot never came back"
            await asyncio.sleep(0.05)
        assert await state.reserve("probed", Limits(), 0, now()) == 0.0  # now our probe
        slot, probed = await state.view(["slot", "probed"], now())
        assert (slot.in_flight, probed.in_flight, probed.probing) == (1, 1, True)
    finally:
        await state.aclose()


async def test_keys_are_namespaced_and_expire(redis_server: RedisServer) -> None:
    ns = uuid.uuid4().hex
    state = RedisState(redis_server.url, namespace=ns, ttl_s=120)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await state.reserve("d1", Limits(rpm=5, tpm=1000), 10, now())
        await state.record_failure("d1", "E", HEALTH, now())
        await state.record_success("d2", 0.1, now())
        prefix = f"chatgate:rs:{{{ns}}}:"
        keys = sorted([k.decode() async for k in client.scan_iter(match=prefix + "*")])
        assert keys == [prefix + "d:d1", prefix + "d:d2", prefix + "f:d1", prefix + "leases"]
        for key in keys:
            assert 0 < await client.pttl(key) <= 120_000, key
        await state.record_failure("d2", "E", HEALTH, now(), cool_for=600)
        assert await client.pttl(prefix + "d:d2") > 600_000  # outlives its cooldown
    finally:
        await state.aclose()
        await client.aclose()


async def test_errors_other_than_unavailability_are_raised(redis_server: RedisServer) -> None:
    ns = uuid.uuid4().hex
    state = RedisState(redis_server.url, namespace=ns)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await client.set(f"chatgate:rs:{{{ns}}}:d:x", "not a hash")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await state.view(["x"], now())
        assert not state.degraded
    finally:
        await state.aclose()
        await client.aclose()


async def test_redis_down_fails_open_to_process_memory_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "chatgate.router")
    fallbacks: list[Any] = []
    limits = Limits(rpm=2)
    with RedisServer() as server:
        clock = ManualClock()  # when Redis is tried again follows the state's clock
        state = RedisState(
            server.url,
            namespace="outage",
            retry_s=0.2,
            on_fallback=lambda: fallbacks.append(1),
            clock=clock,
        )
        try:
            assert await state.reserve("k", limits, 0, now()) == 0.0
            server.stop()
            # the real server is gone: this process's memory answers, with the same limits
            started = time.monotonic()
            assert await state.reserve("k", limits, 0, now()) == 0.0
            assert await state.reserve("k", limits, 0, now()) == 0.0
            assert await state.reserve("k", limits, 0, now()) > 0
            assert time.monotonic() - started < 0.5  # refused connections: no waiting
            assert state.degraded
            assert len(fallbacks) == 3
            warnings = [r.getMessage() for r in caplog.records]
            assert len(warnings) == 1
            assert "Redis unavailable" in warnings[0]
            with pytest.raises(ConnectionError):
                await state.ping()

            server.start()  # an empty Redis, on the same port
            clock.advance(0.25)  # retry_s passes: the next call tries Redis again
            assert await state.reserve("k", limits, 0, now()) == 0.0
            assert not state.degraded
            assert "Redis is back" in caplog.records[-1].getMessage()
            assert len(fallbacks) == 3
            for _ in range(2):  # the slots taken in memory are given back there
                await state.release("k", limits, 0, now())
            [seen] = await state.view(["k"], now())
            assert seen.in_flight == 1
            await state.release("k", limits, 0, now())  # the one from before the outage
            await state.release("k", limits, 0, now())
            [seen] = await state.view(["k"], now())
            assert seen.in_flight == 0
        finally:
            await state.aclose()
