"""Slow clients against a real `chatgate serve`: headers or a body trickled byte by byte are cut
off at their deadline (408), idle connections that never send a byte are closed, a connection
beyond the cap gets a clear 503, and meanwhile normal requests keep their latency."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clock import Stopwatch, poll_until
from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
SLOW_SOCKETS = 300
NORMAL_REQUESTS = 300


def _config(upstream: FakeOpenAI, **general: Any) -> dict[str, Any]:
    timeouts = {"header_timeout_s": HEADER_TIMEOUT_S, "body_timeout_s": BODY_TIMEOUT_S}
    return gateway_config(deployment("fast", upstream), **(timeouts | general))


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serve(_config(upstream), tmp_path_factory) as gw:
        yield gw


def _port(gw: Gateway) -> int:
    return int(gw.url.rsplit(":", 1)[1])


async def _trickle(
    port: int, first: bytes, closed_at: list[float], clock: Callable[[], float]
) -> None:
    """Open a connection, send ``first``, then one more header byte every 0.3 s until the
    gateway closes the connection (or 30 s pass: long after the deadline, however loaded the
    machine); the time it was closed (``clock``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(first)
        stop = time.monotonic() + 15 * HEADER_TIMEOUT_S
        while time.monotonic() < stop:
            try:
                data = await asyncio.wait_for(reader.read(4096), 0.3)
            except TimeoutError:
                writer.write(b"x")
                continue
            if not data or b"408" in data:
                closed_at.append(clock())
                return
    except ConnectionError:
        closed_at.append(clock())
    finally:
        writer.close()


async def _normal_requests(
    port: int, count: int, pids: tuple[int, ...]
) -> tuple[list[float], list[float]]:
    """``count`` chat requests one after another on one kept-alive connection; their
    latencies in ms, less the time the threads ``pids`` waited for a CPU meanwhile (a loaded
    machine's delays are not the gateway's), and as the wall clock saw them."""
    watch = Stopwatch(*pids)
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n{body}"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies, walls = [], []  # less the waits, and as the wall clock saw them
    try:
        for _ in range(count):
            watch.restart()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            latencies.append(watch.elapsed_s() * 1000.0)
            walls.append(watch.wall_s() * 1000.0)
    finally:
        writer.close()
    return latencies, walls


def test_slowloris_sockets_are_closed_at_the_deadline_while_others_are_served(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    port = _port(gateway)
    # the threads a request's time runs on: the gateway's loop, this test's, the upstream's
    pids = (gateway.proc.pid, os.getpid(), upstream._thread.native_id or 0)

    async def run() -> tuple[list[float], list[float], list[float]]:
        closed_at: list[float] = []  # on the stopwatch: seconds since the first connection
        watch = Stopwatch(*pids)
        first = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: "
        slow = [
            asyncio.ensure_future(_trickle(port, first, closed_at, watch.elapsed_s))
            for _ in range(SLOW_SOCKETS)
        ]
        await asyncio.sleep(0.5)  # the slow ones are all connected and trickling
        latencies, walls = await _normal_requests(port, NORMAL_REQUESTS, pids)
        await asyncio.gather(*slow)
        return closed_at, latencies, walls

    closed_at, latencies, walls = asyncio.run(run())
    assert len(closed_at) == SLOW_SOCKETS, (
        f"{SLOW_SOCKETS - len(closed_at)} slow sockets still open"
    )
    # cut off at the deadline, not long after it (the connections opened within ~0.5 s)
    assert max(closed_at) < HEADER_TIMEOUT_S + 1.5
    latencies.sort()
    walls.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    seen = f"p99 {p99:.1f} ms (wall clock: {walls[int(len(walls) * 0.99) - 1]:.1f} ms)"
    print(f"normal requests: p50 {latencies[len(latencies) // 2]:.1f} ms, {seen}")
    assert p99 < 50.0, f"{seen} while {SLOW_SOCKETS} slow clients trickle headers"


def test_a_trickled_body_gets_408_at_its_deadline_and_the_log_says_so(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'x-chatgate-trace-id: slow-body\r\ncontent-length: 1000\r\n\r\n{"model": '
        )
        watch = Stopwatch(gateway.proc.pid, os.getpid())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"body_timeout" in answer
    assert watch.wall_s() > BODY_TIMEOUT_S - 0.5  # not before its deadline
    assert watch.elapsed_s() < BODY_TIMEOUT_S + 1.5  # nor long after it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [line for line in gateway.access_lines() if line["trace_id"] == "slow-body"]
        if lines:
            break
        time.sleep(0.05)
    assert lines
    assert lines[0]["status"] == 408
    assert lines[0]["error_class"] == "body_timeout"


def test_a_connection_that_never_sends_a_byte_is_closed(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway)), timeout=10) as sock:
        watch = Stopwatch(gateway.proc.pid, os.getpid())
        assert sock.recv(4096) == b""  # closed, with nothing to answer
        assert watch.elapsed_s() < HEADER_TIMEOUT_S + 1.5


def test_beyond_max_connections_a_request_gets_a_clear_503(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    config = _config(upstream, max_connections=8, header_timeout_s=30)
    with serve(config, tmp_path) as gw:
        held = [socket.create_connection(("127.0.0.1", _port(gw))) for _ in range(8)]
        try:
            status, body = request_json(f"{gw.url}/v1/models", method="GET")
            assert status == 503
            assert body["error"]["code"] == "too_many_connections"
            assert "max_connections" in body["error"]["message"]
        finally:
            for sock in held:
                sock.close()
        # served again once the gateway has seen them go
        poll_until(lambda: request_json(f"{gw.url}/v1/models", method="GET")[0] == 200, 30)
        assert "over max_connections (8)" in gw.log_text()


def test_the_cap_is_lowered_to_what_the_open_file_limit_allows(tmp_path: Path) -> None:
    """Where the hard limit forbids max_connections' descriptors, serve fewer and say so,
    rather than fail to accept at EMFILE under load. (A child process: rlimits are global.)"""
    import subprocess
    import sys

    code = (
        "import logging, resource\n"
        "from chatgate.server.connections import ConnectionLimits, fit_descriptor_limit\n"
        "logging.basicConfig()\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (512, 1024))\n"
        "print(fit_descriptor_limit(ConnectionLimits(max_connections=4096)).max_connections)\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "print(fit_descriptor_limit(ConnectionLimits(max_connections=400)).max_connections)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.split() == ["448", "1024", "400"]  # (1024 - 128) // 2; raised to hard
    assert "max_connections 4096 needs 8320 open files" in done.stderr


def test_worker_processes_get_the_limits_too(upstream: FakeOpenAI, tmp_path: Path) -> None:
    """`serve --workers N` hands the protocol to spawned processes (it must pickle)."""
    with serve(_config(upstream), tmp_path, extra_args=("--workers", "2")) as gw:
        with socket.create_connection(("127.0.0.1", _port(gw)), timeout=10) as sock:
            sock.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\n")  # never finished
            watch = Stopwatch(gw.proc.pid, *gw.worker_pids(), os.getpid())
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert watch.elapsed_s() < HEADER_TIMEOUT_S + 1.5
