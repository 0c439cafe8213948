"""Helpers for the spend-log fault tests: steady traffic against a real `chatgate serve`
(noting every 200's request id and when it was answered), a tmpfs to fill, and the rows."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_DAILY, SPEND_LOG
from tests import gateway_harness as harness
from tests.clock import run_queue_wait_s
from tests.fakes.openai_server import FakeOpenAI

MASTER = "sk-master-spend-faults"
MAX_REQUESTS = 40_000  # a bound on any one load, whatever the clock says


def gateway_config(upstream: FakeOpenAI, database_url: str, **general: Any) -> dict[str, Any]:
    deployment = harness.deployment("m", upstream)
    return harness.gateway_config(deployment, master_key=MASTER, database=database_url, **general)


@dataclass
class Load:
    """``threads`` clients on keep-alive connections, each sending chat completions one
    after another (``pause_s`` apart) until ``stop()``, the gateway dies or ``max_s``
    passes.

    With ``gateway_pid``, ``answered`` times and ``now()`` are on that process's clock: the
    wall time less what the scheduler kept its event loop (the main thread) waiting for a
    CPU, so that "within the last 75 ms" means 75 ms in which the gateway's loop could run,
    however loaded the machine."""

    url: str
    gateway_pid: int | None = None
    threads: int = 6
    max_s: float = 60.0
    pause_s: float = 0.0  # between one thread's requests
    reconnect: bool = False  # after a lost connection (one of several workers was killed)
    answered: dict[str, float] = field(default_factory=dict)  # request id -> now()
    statuses: Counter[int] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        self._workers = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)

    def _run(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
        deadline = time.monotonic() + self.max_s
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if sum(self.statuses.values()) >= MAX_REQUESTS:
                    return
                try:
                    conn.request("POST", "/v1/chat/completions", body, headers)
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException):
                    if not self.reconnect:
                        return  # the gateway is gone (SIGKILL): stop, as a client would
                    self.statuses[0] += 1  # a connection lost with its worker: try another
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=10)
                    time.sleep(0.01)
                    continue
                self.statuses[resp.status] += 1
                if resp.status == 200:
                    self.answered[resp.headers["x-chatgate-request-id"]] = self.now()
                if self.pause_s:
                    time.sleep(self.pause_s)
        finally:
            conn.close()

    def now(self) -> float:
        """Monotonic time, on the gateway's clock when ``gateway_pid`` is set."""
        if self.gateway_pid is None:
            return time.monotonic()
        return time.monotonic() - run_queue_wait_s(self.gateway_pid)

    def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answered) < count:
            assert time.monotonic() < deadline, (
                f"only {len(self.answered)} answers: {self.statuses}"
            )
            time.sleep(0.01)


class DiskProbe:
    """How long a small write + fdatasync takes on a filesystem, measured every 10 ms in a
    thread while a test runs: records the gateway answered wait for its WAL's previous
    fdatasync, which the machine's other writers can hold up well past the WAL's own window
    (measured: up to 90 ms on a loaded 2-core machine with a 20 ms median of 1 ms)."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / "disk-probe"
        self._syncs: list[tuple[float, float]] = []  # (ended, took), monotonic seconds
        self._began: float | None = None  # the sync under way
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with self._path.open("ab", buffering=0) as out:
            while not self._stop.is_set():
                self._began = time.monotonic()
                out.write(b"x" * 100)
                os.fdatasync(out.fileno())
                ended = time.monotonic()
                self._syncs.append((ended, ended - self._began))
                self._began = None
                time.sleep(0.01)

    def worst_since(self, since: float) -> float:
        """The longest sync that ended after ``since`` (monotonic), or is still under way."""
        began = self._began
        under_way = 0.0 if began is None else time.monotonic() - began
        return max([under_way, *(took for ended, took in self._syncs if ended > since)])


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not on /metrics"
    return float(found.group(1))


def readiness(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{url}/health/readiness", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_until_written(url: str, timeout_s: float = 60.0) -> None:
    """Until the gateway has every record it took in the database."""
    deadline = time.monotonic() + timeout_s
    while metric(url, "chatgate_spend_records_pending") > 0:
        assert time.monotonic() < deadline, "the spend log never caught up"
        time.sleep(0.1)


def rows(database_url: str) -> tuple[list[str], int]:
    """Every spend_log row's request id, and the requests the daily rollup counts."""

    async def read() -> tuple[list[str], int]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                ids = list((await conn.execute(select(SPEND_LOG.c.request_id))).scalars())
                daily = list((await conn.execute(select(SPEND_DAILY.c.requests))).scalars())
        finally:
            await engine.dispose()
        return ids, sum(daily)

    return asyncio.run(read())


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path``, to fill up; skipped where mounting is
    impossible (not root, or a container without CAP_SYS_ADMIN)."""
    path.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except FileNotFoundError:
        pytest.skip("no mount command: the disk-full test needs to mount a small tmpfs")
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs ({done.stderr.strip()}): the disk-full test needs root "
            "with CAP_SYS_ADMIN"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return filler
