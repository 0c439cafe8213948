"""A gateway killed (SIGKILL) with budgeted calls in flight leaves their holds in the database;
the next gateway on that database (two workers, both sweeping) releases them within the hold
TTL plus one sweep period, and the key can spend again. While a gateway lives, its holds
outlast the TTL (it renews them). On SQLite and PostgreSQL, through real `chatgate serve`."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from chatgate.cost.budgets import HOLD_TTL_MARGIN_S
from chatgate.store.engine import create_engine
from tests.clock import Stopwatch
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json
from tests.fakes.postgres import PostgresServer
from tests.faults.budget_support import (
    MAX_TOKENS,
    counters,
    gateway_config,
    new_key,
    post_many,
)
from tests.gateway_harness import Gateway, serve

TTL_S = 2.0
EVERY_S = TTL_S / 4  # Budgets.maintain_every_s for this TTL
IN_FLIGHT = 9  # ~$0.00101 held each: together all but ~$0.0009 of the $0.01
BODY = {"model": "dear", "messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_TOKENS}


def fire(url: str, key: str, count: int) -> threading.Thread:
    """Send ``count`` requests from a thread and forget them (they die with the gateway)."""

    async def send() -> None:
        timeout = aiohttp.ClientTimeout(total=120)
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:

            async def one() -> Any:
                async with session.post(f"{url}/v1/chat/completions", json=BODY) as resp:
                    return await resp.read()

            await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)

    thread = threading.Thread(target=asyncio.run, args=(send(),), daemon=True)
    thread.start()
    return thread


def wait_for(check: Any, timeout_s: float, what: str) -> float:
    """Poll ``check()`` until true; how long it took."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        time.sleep(0.05)
    return time.monotonic() - began


def status_of(gw: Gateway, key: str) -> int:
    return asyncio.run(post_many(gw.url, key, [BODY]))[0]


def test_holds_of_a_killed_gateway_come_back_within_the_ttl(
    db_url: str, flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path
) -> None:
    config = gateway_config(db_url, flaky, dear, budget_hold_ttl_s=TTL_S)
    held = lambda: asyncio.run(counters(db_url, key_id))[1]  # noqa: E731
    dear.script(*[Reply(json=completion_json("late"), delay_s=20)] * IN_FLIGHT)
    with serve(config, tmp_path) as first:
        secret, key_id = new_key(first, models=["dear"])
        fire(first.url, secret, IN_FLIGHT)
        wait_for(lambda: len(dear.requests) == IN_FLIGHT, 60, "every call reached the upstream")
        holding = held()
        assert holding > 0
        assert status_of(first, secret) == 402  # what is left cannot cover another call
        time.sleep(TTL_S * 2)  # past the TTL: the live gateway renews its holds
        assert held() == holding
        first.proc.kill()
        first.proc.wait(10)
    assert held() == holding  # nothing released them: the process is gone
    dear.replies.clear()
    dear.script(Reply(json=completion_json("ok", model="dear-model", prompt_tokens=8)))
    with serve(config, tmp_path, extra_args=("--workers", "2")) as second:
        # both workers sweep; at most the TTL and one period after start (less: the TTL ran
        # from the kill on); 1 s more for the sweep's own transaction and this poll. On the
        # processes' clock: time they waited for a CPU on a loaded machine is not the sweep's.
        watch = Stopwatch(second.proc.pid, *second.worker_pids(), os.getpid())
        wait_for(lambda: held() == 0, 60, "the dead gateway's holds released")
        assert watch.elapsed_s() < TTL_S + EVERY_S + 1, watch.wall_s()
        assert status_of(second, secret) == 200


def test_the_default_ttl_is_the_router_timeout_plus_a_margin(
    flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    config = gateway_config(url, flaky, dear)  # router_settings.timeout: 30
    dear.script(Reply(json=completion_json("late"), delay_s=3))
    with serve(config, tmp_path) as gw:
        secret, _ = new_key(gw, models=["dear"])
        sent = time.time()
        fire(gw.url, secret, 1)
        wait_for(lambda: len(dear.requests) == 1, 60, "the call reached the upstream")
        (expires,) = asyncio.run(hold_expiries(url))
        read = time.time()
    # held between the two readings, so it expires the TTL after a time between them (a
    # bound that holds however long the machine took; 10 ms for the stored precision)
    ttl = 30 + HOLD_TTL_MARGIN_S
    assert sent + ttl - 0.01 <= expires <= read + ttl + 0.01


async def hold_expiries(url: str) -> list[float]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT expires_at FROM budget_reservations"))
            return [float(r[0]) for r in rows]
    finally:
        await engine.dispose()


def test_the_keeper_survives_a_database_outage_and_logs_it_once(
    pg_url: str, postgres: PostgresServer, flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path
) -> None:
    config = gateway_config(pg_url, flaky, dear, budget_hold_ttl_s=TTL_S)
    with serve(config, tmp_path) as gw:
        postgres.stop()
        try:
            time.sleep(EVERY_S * 6)
        finally:
            postgres.start()
        wait_for(lambda: "swept again" in gw.log_text(), 60, "the keeper back at work")
        log = gw.log_text()
    assert log.count("budget holds cannot be renewed or swept") == 1
    assert log.count("budget holds are renewed and swept again") == 1
