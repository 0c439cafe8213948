"""Run a real `chatgate serve` process on a random loopback port for a test."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import openai


# A bound for a gateway to start, not an expectation: the wait ends as soon as it answers, or
# exits. Two workers starting on a loaded 2-core machine have taken over 30 s.
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request_json(
    url: str, *, method: str = "POST", body: bytes = b"", key: str | None = None
) -> tuple[int, Any]:
    """One JSON request with urllib: (status, parsed body), error statuses included."""
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Gateway:
    """A running `chatgate serve`: its URL, process, config file, log file and master key
    (None without one, or when the config reads it from the environment)."""

    def __init__(
        self,
        url: str,
        proc: subprocess.Popen[bytes],
        config: Path,
        log: Path,
        master_key: str | None = None,
    ) -> None:
        self.url = url
        self.proc = proc
        self.config_path = config
        self.log_path = log
        self.master_key = master_key
        self.database_path: Path | None = None  # its SQLite file, where the harness chose it

    def admin(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        """One JSON call to the gateway (the admin API, with the master key unless ``key``):
        (status, parsed body)."""
        data = b"" if body is None else json.dumps(body).encode()
        return request_json(
            f"{self.url}{path}", method=method, body=data, key=key or self.master_key
        )

    def openai_client(self, key: str | None = None, **options: Any) -> openai.OpenAI:
        """The official openai SDK on this gateway: the master key unless ``key``, and no
        retries unless ``options`` say otherwise. Close it (``with``) when done."""
        import openai  # only the tests that use the SDK pay for importing it

        api_key = key or self.master_key or "unused"
        options = {"max_retries": 0, **options}
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, **options)

    def create_key(self, **fields: Any) -> dict[str, Any]:
        """POST /admin/keys with ``fields``: the answer, the new key in ``key``."""
        status, body = self.admin("POST", "/admin/keys", fields)
        assert status == 200, body
        created: dict[str, Any] = body
        return created

    def new_key(self, **fields: Any) -> str:
        """A new virtual key with ``fields`` (models, budgets, limits, metadata, ...)."""
        key: str = self.create_key(**fields)["key"]
        return key

    def log_text(self) -> str:
        return self.log_path.read_text()

    def worker_pids(self) -> list[int]:
        """The worker processes of `serve --workers N` (not multiprocessing's resource
        tracker, which the supervisor also starts)."""
        pid = self.proc.pid
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        workers = []
        for child in children:
            with contextlib.suppress(OSError):
                if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                    workers.append(child)
        return workers

    def access_lines(self) -> list[dict[str, Any]]:
        """The JSON access-log lines written so far (whole lines only: the writer may be in
        the middle of the last one)."""
        text = self.log_text()
        whole = text[: text.rfind("\n") + 1]
        lines = []
        for line in whole.splitlines():
            if line.startswith("{") and '"request_id"' in line:
                lines.append(json.loads(line))
        return lines

    def wait_for_access_line(
        self, value: str, timeout_s: float = 5.0, *, field: str = "request_id"
    ) -> dict[str, Any]:
        """The access-log line whose ``field`` is ``value``, once written."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.access_lines():
                if line[field] == value:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no access-log line with {field} {value}:\n{self.log_text()}")

    def metric_samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample on /metrics now: (name, labels) -> value."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            assert resp.headers["content-type"].startswith("text/plain")
            text = resp.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        """One sample on /metrics now (0.0 when there is none)."""
        return self.metric_samples().get((name, frozenset(labels.items())), 0.0)


def _master_key(config: Mapping[str, Any] | None) -> str | None:
    key = ((config or {}).get("general_settings") or {}).get("master_key")
    return key if isinstance(key, str) and not key.startswith("os.environ/") else None


@contextlib.contextmanager
def run_gateway(
    config: Mapping[str, Any] | None,
    tmp: Path,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[str]:
    """Yield the gateway's root URL (http://127.0.0.1:PORT) while it runs."""
    with start_gateway(config, tmp, env, ready_timeout_s) as gateway:
        yield gateway.url


@contextlib.contextmanager
def start_gateway(
    config: Mapping[str, Any] | None,
    tmp: Path,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
    extra_args: tuple[str, ...] = (),
) -> Iterator[Gateway]:
    """Run `chatgate serve` on a free loopback port; yield it once /health/liveness answers.
    Stopped with SIGTERM (then SIGKILL) at the end, unless the test already stopped it."""
    port = free_port()
    args = [sys.executable, "-m", "chatgate.cli", "serve", "--port", str(port), *extra_args]
    path = tmp / f"config-{port}.yaml"
    if config is not None:
        path.write_text(yaml.safe_dump(dict(config)))
        args += ["--config", str(path)]
    log_path = tmp / f"gateway-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(  # in tmp: the default database file lands there
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {(tmp / f'gateway-{port}.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health/liveness", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield Gateway(url, proc, path, log_path, _master_key(config))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
