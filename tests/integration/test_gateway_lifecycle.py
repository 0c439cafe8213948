"""Reload (admin endpoint and SIGHUP), graceful shutdown on SIGTERM, --workers N, and
pluggable readiness — against real `chatgate serve` processes and the real ASGI app."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatgate.config import Config, parse
from chatgate.server.app import create_app
from tests.clock import poll_until
from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI, Reply, text_stream
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

MASTER = "sk-master-lifecycle-8080"


def config_for(upstream: FakeOpenAI, *names: str, **general: Any) -> dict[str, Any]:
    return gateway_config(*[deployment(n, upstream) for n in names], master_key=MASTER, **general)


def http(
    gateway: Gateway, method: str, path: str, key: str | None = MASTER
) -> tuple[int, dict[str, Any]]:
    status, body = request_json(f"{gateway.url}{path}", method=method, key=key)
    return status, body


def model_ids(gateway: Gateway) -> list[str]:
    return [m["id"] for m in http(gateway, "GET", "/v1/models")[1]["data"]]


class StreamReader(threading.Thread):
    """Reads one streamed chat completion from the gateway in the background."""

    def __init__(self, gateway: Gateway, model: str = "a") -> None:
        super().__init__(daemon=True)
        self.gateway = gateway
        self.model = model
        self.first_chunk = threading.Event()
        self.text = ""
        self.done = False
        self.error: BaseException | None = None

    def run(self) -> None:
        body = {"model": self.model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
        request = urllib.request.Request(
            f"{self.gateway.url}/v1/chat/completions", data=json.dumps(body).encode()
        )
        request.add_header("Authorization", f"Bearer {MASTER}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                for raw in resp:
                    line = raw.decode().strip()
                    if line == "data: [DONE]":
                        self.done = True
                    elif line.startswith("data: "):
                        chunk = json.loads(line[6:])
                        for choice in chunk.get("choices", []):
                            self.text += choice["delta"].get("content") or ""
                        self.first_chunk.set()
        except Exception as exc:  # recorded for the test to look at
            self.error = exc
            self.first_chunk.set()


def slow_stream(words: int, delay_s: float) -> Reply:
    return Reply(chunks=text_stream([f"w{i} " for i in range(words)]), chunk_delay_s=delay_s)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_admin_reload_swaps_config_without_dropping_a_stream(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    with serve(config_for(upstream, "a"), tmp_path) as gw:
        upstream.script(slow_stream(20, 0.03))
        reader = StreamReader(gw)
        reader.start()
        assert reader.first_chunk.wait(5)
        gw.config_path.write_text(yaml.safe_dump(config_for(upstream, "b")))
        status, body = http(gw, "POST", "/admin/reload")
        assert (status, body) == (200, {"status": "reloaded", "models": ["b"]})
        assert model_ids(gw) == ["b"]
        reader.join(10)
        assert reader.error is None
        assert reader.done
        assert reader.text == "".join(f"w{i} " for i in range(20))
        gw.config_path.write_text("model_list:\n  - model_name: c\n    params: {modle: x}\n")
        status, body = http(gw, "POST", "/admin/reload")
        assert status == 400
        assert body["error"]["code"] == "invalid_config"
        assert "line 3" in body["error"]["message"]
        assert "modle: unknown key" in body["error"]["message"]
        assert model_ids(gw) == ["b"]
        assert http(gw, "POST", "/admin/reload", key=None)[0] == 401


def test_sighup_reloads_and_keeps_the_old_config_when_the_new_one_is_bad(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    with serve(config_for(upstream, "a"), tmp_path) as gw:
        gw.config_path.write_text(yaml.safe_dump(config_for(upstream, "a", "c")))
        gw.proc.send_signal(signal.SIGHUP)
        poll_until(lambda: model_ids(gw) == ["a", "c"])
        gw.config_path.write_text("model_list: [oops\n")
        gw.proc.send_signal(signal.SIGHUP)
        poll_until(lambda: "config not reloaded" in gw.log_text())
        assert "not valid YAML" in gw.log_text()
        assert model_ids(gw) == ["a", "c"]
        assert gw.proc.poll() is None


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_sigterm_lets_an_in_flight_stream_finish_then_exits(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    with serve(config_for(upstream, "a", shutdown_grace_s=10), tmp_path) as gw:
        upstream.script(slow_stream(60, 0.05))
        reader = StreamReader(gw)
        reader.start()
        assert reader.first_chunk.wait(5)
        gw.proc.send_signal(signal.SIGTERM)
        poll_until(lambda: refused(gw.url), 2)  # stops accepting at once ...
        assert reader.is_alive()  # ... while the stream still runs
        reader.join(10)
        assert (reader.error, reader.done) == (None, True)
        assert reader.text.count("w") == 60
        assert gw.proc.wait(10) == 0
        assert '"status":200' in gw.log_text()  # its access-log line was flushed on the way out


def test_sigterm_cuts_streams_at_the_grace_deadline(upstream: FakeOpenAI, tmp_path: Path) -> None:
    with serve(config_for(upstream, "a", shutdown_grace_s=0.5), tmp_path) as gw:
        upstream.script(slow_stream(200, 0.05))
        reader = StreamReader(gw)
        reader.start()
        assert reader.first_chunk.wait(5)
        started = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(10)
        assert time.monotonic() - started < 4
        reader.join(5)
        assert not reader.done


# Put first on a gateway's PYTHONPATH: the first Python process to start once the test has
# created the marker file takes it and sleeps SLOW_START_S before anything else.
SLOW_START = """\
import os, pathlib, time
try:
    pathlib.Path(os.environ["CHATGATE_TEST_SLOW_START"]).unlink()
except (KeyError, FileNotFoundError):
    pass
else:
    time.sleep(float(os.environ["CHATGATE_TEST_SLOW_START_S"]))
"""
SLOW_START_S = 6  # past uvicorn's own 5 s wait for a new worker (timeout_worker_healthcheck)


def slow_start_env(folder: Path) -> tuple[dict[str, str], Path]:
    """The environment that makes a worker slow to start, and the marker that arms it."""
    (folder / "slow").mkdir()
    (folder / "slow" / "sitecustomize.py").write_text(SLOW_START)
    marker = folder / "slow-start"
    path = os.pathsep.join(p for p in (str(folder / "slow"), os.environ.get("PYTHONPATH")) if p)
    env = {
        "PYTHONPATH": path,
        "CHATGATE_TEST_SLOW_START": str(marker),
        "CHATGATE_TEST_SLOW_START_S": str(SLOW_START_S),
    }
    return env, marker


def test_workers_share_nothing_but_metrics(upstream: FakeOpenAI, tmp_path: Path) -> None:
    """Two workers sum their metrics; a reload replaces both, even when a new worker takes
    longer to start than uvicorn's default wait (a loaded machine): none keeps the old config."""
    env, marker = slow_start_env(tmp_path)
    with serve(config_for(upstream, "a"), tmp_path, env=env, extra_args=("--workers", "2")) as gw:
        poll_until(lambda: len(gw.worker_pids()) == 2, 30, "two workers")
        old = set(gw.worker_pids())
        with gw.openai_client() as client:
            for _ in range(12):
                out = client.chat.completions.create(
                    model="a", messages=[{"role": "user", "content": "hi"}]
                )
                assert out.choices[0].message.content == "echo: hi"

        def counted() -> float:
            with urllib.request.urlopen(f"{gw.url}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("chatgate_requests_total{")
            )

        poll_until(lambda: counted() == 12, 30, "12 requests counted")
        # a reload through any worker restarts them all on the new config, one at a time
        gw.config_path.write_text(yaml.safe_dump(config_for(upstream, "z")))
        marker.touch()  # the first new worker starts slowly
        status, body = http(gw, "POST", "/admin/reload")
        assert (status, body) == (200, {"status": "restarting workers", "models": ["z"]})
        poll_until(
            lambda: not old & set(gw.worker_pids()) and len(gw.worker_pids()) == 2,
            90,
            "both workers replaced",
            every_s=0.1,
        )
        assert not marker.exists()  # a worker did start slowly
        assert "not ready in time" not in gw.log_text()
        for _ in range(8):  # whichever worker answers
            assert model_ids(gw) == ["z"]
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(60) == 0


async def call(app: Any, path: str) -> tuple[int, dict[str, Any]]:
    """One GET through the ASGI app itself."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


async def test_readiness_checks_are_pluggable() -> None:
    async def database() -> None:
        raise ConnectionError("no route to the database")

    async def cache() -> None:
        return None

    config: Config = parse({})
    app = create_app(config, zero_config=False, checks={"database": database, "redis": cache})
    status, body = await call(app, "/health/readiness")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "ConnectionError: no route to the database",
    }
    assert body["checks"]["redis"] == {"ok": True}
    healthy = create_app(config, zero_config=False, checks={"redis": cache})
    assert (await call(healthy, "/health/readiness"))[0] == 200
