"""The spend log on PostgreSQL: stopped in the middle of traffic to a real `chatgate serve`
and started again, every answered request has its row, once; and a gateway SIGKILLed while
PostgreSQL is down replays its WAL at the next start, losing only the last window."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.postgres import PostgresServer, running_postgres
from tests.faults.spend_load import (
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
