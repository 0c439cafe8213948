"""Run a real `chatgate serve` process on a random loopback port for a test."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def run_gateway(
    config: Mapping[str, Any] | None,
    tmp: Path,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 30.0,
) -> Iterator[str]:
    """Yield the gateway's root URL (http://127.0.0.1:PORT) while it runs."""
    port = free_port()
    args = [sys.executable, "-m", "chatgate.cli", "serve", "--port", str(port)]
    if config is not None:
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(dict(config)))
        args += ["--config", str(path)]
    log = (tmp / f"gateway-{port}.log").open("wb")
    proc = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
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
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
