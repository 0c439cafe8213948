"""The database holding the virtual keys goes down under a running `chatgate serve` (a real
PostgreSQL, stopped and started again): keys verified within key_cache_ttl_s keep working, the
others get 503 with Retry-After and the code key_store_unavailable (never a 500), the log gets
a line per transition rather than one per request, and service comes back by itself."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatgate.server.store_outage import StoreOutage
from tests.clock import Stopwatch, poll_until
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.postgres import PostgresServer, running_postgres
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

MASTER = "sk-master-store-down-5"
CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def call(
    gw: Gateway, path: str, body: Any, key: str, method: str = "POST"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(gw.url + path, data=json.dumps(body).encode(), method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read()), dict(exc.headers)


def server_lines(gw: Gateway) -> list[str]:
    """The log without the access-log lines (JSON, one per request by design)."""
    return [line for line in gw.log_text().splitlines() if not line.startswith("{")]


def test_key_store_outage_gives_503_keeps_recent_keys_and_logs_transitions(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    with FakeOpenAI() as upstream:
        config = gateway_config(
            deployment("fast", upstream),
            master_key=MASTER,
            database=postgres.url,
            key_cache_ttl_s=60,
        )
        with serve(config, tmp_path) as gw:
            keys = []
            for fields in ({}, {}, {"budget": "10"}):
                status, created, _ = call(gw, "/admin/keys", fields, MASTER)
                assert status == 200, created
                keys.append(created["key"])
            recent, unseen, budgeted = keys
            for key in (recent, budgeted):  # verified now
                assert call(gw, "/v1/chat/completions", CHAT, key)[0] == 200

            postgres.stop()
            watch = Stopwatch(gw.proc.pid, os.getpid())  # less the waits for a CPU
            answers = [call(gw, "/v1/chat/completions", CHAT, unseen) for _ in range(200)]
            elapsed = watch.elapsed_s()
            statuses = {status for status, _, _ in answers}
            assert statuses == {503}, statuses
            status, body, headers = answers[0]
            assert body["error"]["code"] == "key_store_unavailable", body
            assert int(headers["retry-after"]) >= 1
            assert elapsed < 20, f"200 refusals took {elapsed:.1f}s"
            status, body, headers = call(gw, "/v1/messages", {**CHAT, "max_tokens": 5}, unseen)
            assert status == 503, body
            assert body["type"] == "error", body  # Anthropic's error shape on its route
            assert "retry-after" in {k.lower() for k in headers}
            status, body, _ = call(gw, "/v1/chat/completions", CHAT, recent)
            assert status == 200, body  # verified within key_cache_ttl_s: still served
            for key, path in ((budgeted, "/v1/chat/completions"), (MASTER, "/admin/keys")):
                status, body, headers = call(gw, path, CHAT if key == budgeted else {}, key)
                assert status == 503, body  # the budget hold and the admin API need the store
                assert body["error"]["code"] == "database_unavailable", body
                assert int(headers["retry-after"]) >= 1

            lines = server_lines(gw)
            outage_lines = [line for line in lines if "key store" in line]
            assert len(outage_lines) == 1, "\n".join(lines[-30:])
            assert not [line for line in lines if " failed: " in line], "\n".join(lines[-30:])

            postgres.start()
            poll_until(
                lambda: call(gw, "/v1/chat/completions", CHAT, unseen)[0] == 200,
                60,
                "the gateway did not come back",
                every_s=0.2,
            )
            back = [line for line in server_lines(gw) if "available again" in line]
            assert len(back) == 1, server_lines(gw)[-30:]
            assert "requests were refused meanwhile" in back[0]


def test_a_long_outage_is_reported_periodically_not_per_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outage = StoreOutage("key store", retry_s=1.0, report_s=60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="chatgate.server")
    outage.failed(ConnectionRefusedError("connect call failed"))
    for _ in range(1000):  # 1,000 requests over 150 s
        now[0] += 0.15
        if not outage.skip():
            outage.failed(ConnectionRefusedError("connect call failed"))
        assert outage.refuse() >= 1
    outage.recovered()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 4, messages  # down, two reports (60 s, 120 s), back
    assert "unavailable (ConnectionRefusedError" in messages[0]
    assert "refused in the last 60s" in messages[1]
    assert "available again after 150.0s; 1000 requests" in messages[3]


def _postgres_pids(server: PostgresServer) -> list[int]:
    """The postmaster (first line of postmaster.pid) and its children: the test's own cluster."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                pids.append(int(stat.parent.name))
    return pids


def test_a_hung_database_is_a_503_within_the_lookup_timeout(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """A database that accepts connections but never answers (SIGSTOP): the lookup gives up
    after 5 s instead of holding the request, and later requests are refused at once."""
    with FakeOpenAI() as upstream:
        config = gateway_config(
            deployment("fast", upstream), master_key=MASTER, database=postgres.url
        )
        with serve(config, tmp_path) as gw:
            status, created, _ = call(gw, "/admin/keys", {}, MASTER)
            assert status == 200, created
            pids = _postgres_pids(postgres)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                # bounds above on the gateway's and this test's clock: a loaded machine's
                # waits for a CPU are not the lookup's
                watch = Stopwatch(gw.proc.pid, os.getpid())
                status, body, _ = call(gw, "/v1/chat/completions", CHAT, created["key"])
                assert (status, body["error"]["code"]) == (503, "key_store_unavailable"), body
                assert watch.wall_s() > 4, watch.wall_s()  # it waited out the lookup timeout
                assert watch.elapsed_s() < 8, watch.elapsed_s()
                watch.restart()
                assert call(gw, "/v1/chat/completions", CHAT, created["key"])[0] == 503
                assert watch.elapsed_s() < 1  # not the probe: answered at once
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            poll_until(
                lambda: call(gw, "/v1/chat/completions", CHAT, created["key"])[0] == 200,
                60,
                "the gateway did not come back",
                every_s=0.2,
            )


async def test_only_the_databases_own_errors_count_as_an_outage(tmp_path: Path) -> None:
    """An OSError raised by the driver is the database's; one from anywhere else is not."""
    from sqlalchemy import text

    from chatgate.server.store_outage import is_store_error
    from chatgate.store.engine import create_engine

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = create_engine(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    try:
        with pytest.raises(ConnectionRefusedError) as refused:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert is_store_error(refused.value)
    with pytest.raises(ConnectionRefusedError) as elsewhere:
        socket.create_connection(("127.0.0.1", port), timeout=1)
    assert not is_store_error(elsewhere.value)
    assert not is_store_error(ValueError("no"))


async def test_a_burst_holding_every_connection_is_not_an_outage(tmp_path: Path) -> None:
    """Every pooled connection in use by a burst while the database answers each query: a key
    lookup waits its turn past lookup_timeout_s and is served, where it was refused as if the
    database were down (503 key_store_unavailable under a burst of budgeted requests)."""
    import asyncio

    from sqlalchemy import text

    from chatgate.server.keys import KeyStore
    from chatgate.store.engine import create_engine
    from chatgate.store.migrations import migrate

    engine = create_engine(f"sqlite:///{tmp_path / 'keys.db'}", pool_size=1, max_overflow=0)
    await migrate(engine)
    store = KeyStore(engine, cache_ttl_s=0, lookup_timeout_s=0.5)
    secret, made = await store.create(name="burst")

    async def hold() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.1)

    holders = [asyncio.ensure_future(hold()) for _ in range(20)]  # ~2 s of queue
    await asyncio.sleep(0)  # queued ahead of the lookup
    began = time.monotonic()
    try:
        found = await store.authenticate(secret)
        waited = time.monotonic() - began
    finally:
        await asyncio.gather(*holders)
        await engine.dispose()
    assert found.key_id == made.key_id
    assert store.outage.down_since is None
    assert waited > 1.0  # it did wait behind the burst, for longer than lookup_timeout_s
