"""The spend log on PostgreSQL: stopped in the middle of traffic to a real `chatgate serve`
and started again, every answered request has its row, once; and a gateway SIGKILLed while
PostgreSQL is down replays its WAL at the next start, losing only the last window."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_LOG
from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.postgres import PostgresServer, running_postgres
from tests.faults.spend_load import (
    MASTER,
    DiskProbe,
    Load,
    gateway_config,
    metric,
    rows,
    wait_until_written,
)
from tests.faults.test_spend_crash import LOOKBACK_S, WINDOW_S
from tests.gateway_harness import serve


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def test_a_postgres_outage_loses_no_answered_request(
    tmp_path: Path, fake: FakeOpenAI, postgres: PostgresServer
) -> None:
    with serve(gateway_config(fake, postgres.url), tmp_path) as gateway:
        load = Load(gateway.url).start()
        try:
            load.wait_for(300)
            postgres.stop()
            load.wait_for(len(load.answered) + 1000)
            assert metric(gateway.url, "chatgate_spend_records_pending") >= 900
            postgres.start()
            load.wait_for(len(load.answered) + 300)
        finally:
            load.stop()
        wait_until_written(gateway.url)
        assert metric(gateway.url, "chatgate_spend_records_dropped_total") == 0
    ids, counted = rows(postgres.url)
    assert set(load.statuses) == {200}
    assert sorted(ids) == sorted(load.answered)
    assert counted == len(load.answered)


def test_a_gateway_killed_while_postgres_is_down_replays_at_start(
    tmp_path: Path, fake: FakeOpenAI, postgres: PostgresServer
) -> None:
    config = gateway_config(fake, postgres.url)
    with serve(config, tmp_path) as gateway, DiskProbe(tmp_path) as disk:
        load = Load(gateway.url, threads=8, gateway_pid=gateway.proc.pid).start()
        load.wait_for(300)
        postgres.stop()
        load.wait_for(len(load.answered) + 1500)
        window = WINDOW_S + disk.worst_since(time.monotonic() - LOOKBACK_S)
        killed_at = load.now()
        os.kill(gateway.proc.pid, signal.SIGKILL)
        load.stop()
        gateway.proc.wait(5)
    postgres.start()
    with serve(config, tmp_path) as gateway:
        wait_until_written(gateway.url)
    ids, counted = rows(postgres.url)
    assert len(ids) == len(set(ids)) == counted
    missing = set(load.answered) - set(ids)
    late = {rid for rid, at in load.answered.items() if at > killed_at - window}
    assert missing <= late
    assert len(set(ids) - set(load.answered)) <= load.threads


def test_a_nul_in_what_a_client_sends_is_answered_and_its_row_lands(
    tmp_path: Path, fake: FakeOpenAI, postgres: PostgresServer
) -> None:
    """PostgreSQL's text refuses NUL; any client can send one in a tag, an admin in a key's
    user. A tag's is answered 200 and its row lands (the NUL written as U+FFFD), the rows after
    it too; a key's user with one is refused, naming the field."""
    with serve(gateway_config(fake, postgres.url), tmp_path) as gateway:
        status, made = request_json(
            f"{gateway.url}/admin/keys", body=json.dumps({"user": "a\x00b"}).encode(), key=MASTER
        )
        assert status == 400
        assert "user" in made["error"]["message"]
        for tags in (["tag\x00x"], ["plain"]):
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            body["metadata"] = {"tags": tags}
            status, _ = request_json(
                f"{gateway.url}/v1/chat/completions", body=json.dumps(body).encode(), key=MASTER
            )
            assert status == 200
        wait_until_written(gateway.url)
        assert metric(gateway.url, "chatgate_spend_records_dropped_total") == 0
    ids, counted = rows(postgres.url)
    assert len(ids) == counted == 2
    assert sorted(t for t in spend_tags(postgres.url) if t) == ["plain", "tag\ufffdx"]


def spend_tags(database_url: str) -> list[str | None]:
    async def read() -> list[str | None]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(select(SPEND_LOG.c.tags))).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(read())
