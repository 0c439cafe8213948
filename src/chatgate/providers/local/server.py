"""The managed llama.cpp servers: one child process per model, on a private loopback port.

``prepare(deployment)`` (the registry's hook) starts the model's server on first use, checks
it with a real one-token request (a broken build loads fine and dies on the first inference),
restarts it if it died, and returns the deployment pointed at it. Servers stop at interpreter
exit, or with ``await stop()``.

Why a child process rather than the bindings in a worker thread: a bad build crashes with
SIGSEGV/SIGILL, which would take the whole gateway down in-process; as a child it is one
failed request, a clear error and a restart. The HTTP hop costs ~1 ms against 20+ ms per token.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from chatgate.errors import APIConnectionError, InvalidRequestError
from chatgate.providers.base import Deployment
from chatgate.providers.local.models import LocalModel, resolve_model

__all__ = ["ManagedServer", "prepare", "running_servers", "stop"]

_START_TIMEOUT_S = 120.0
_INSTALL_HINT = (
    "run scripts/install_local_model.sh (it builds llama-cpp-python with safe CPU flags)"
)
_CRASH_SIGNALS = {signal.SIGSEGV: "SIGSEGV", signal.SIGILL: "SIGILL", signal.SIGBUS: "SIGBUS"}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    model: LocalModel
    threads: int
    max_queue: int
    n_ctx: int
    prefix_cache: bool  # reuse the KV cache of a shared prompt prefix (faster, not deterministic)


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _int_setting(deployment: Deployment, key: str, env: str, default: int) -> int:
    value = deployment.options.get(key, os.environ.get(env, default))
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{key} must be an integer, got {value!r}", param=key) from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ManagedServer:
    """One llama.cpp server child process. Thread-safe; every method but ``ensure`` is sync."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self.port = 0
        self.starts = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def ensure(self) -> str:
        if self.alive():
            return self.api_base
        return await asyncio.to_thread(self._ensure_blocking)

    def _ensure_blocking(self) -> str:
        with self._lock:
            if not self.alive():
                self._start()
            return self.api_base

    def _command(self, port: int) -> list[str]:
        cfg = self.config
        command = [
            sys.executable, "-m", "chatgate.providers.local.child",
            "--model", str(cfg.model.path), "--model_alias", cfg.model.alias,
            "--host", "127.0.0.1", "--port", str(port),
            "--n_threads", str(cfg.threads), "--n_ctx", str(cfg.n_ctx),
            "--logits_all", "False", "--interrupt_requests", "False", "--verbose", "False",
            "--max_queue", str(cfg.max_queue), "--parent_pid", str(os.getpid()),
            "--prefix_cache", str(cfg.prefix_cache),
        ]  # fmt: skip
        if cfg.model.chat_format:
            command += ["--chat_format", cfg.model.chat_format]
        return command

    def _start(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise InvalidRequestError(
                f"the local model needs llama-cpp-python, which is not installed: {_INSTALL_HINT}",
                param="model",
            )
        self._stop_process()
        self.port = _free_port()
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115  # outlives this call; closed below
            prefix=f"chatgate-llama-{self.config.model.alias}-", suffix=".log", delete=False
        )
        self._log_path = Path(log.name)
        with log:
            self._process = subprocess.Popen(
                self._command(self.port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the model
            )
        self.starts += 1
        try:
            self._wait_ready()
            self._smoke_test()
        except APIConnectionError:
            self._stop_process()
            raise

    def _failure(self, what: str) -> APIConnectionError:
        process = self._process
        code = process.poll() if process else None
        tail = ""
        if self._log_path and self._log_path.exists():
            lines = self._log_path.read_text("utf-8", "replace").strip().splitlines()
            tail = "\n".join(lines[-15:])
        if code is not None and -code in _CRASH_SIGNALS:
            reason = (
                f"the llama.cpp build crashed with {_CRASH_SIGNALS[signal.Signals(-code)]} "
                f"{what}: it was compiled for a CPU feature this machine lacks or mishandles "
                "(e.g. -march=native with AMX). Rebuild with scripts/install_local_model.sh"
            )
        elif code is not None:
            reason = f"the local model server exited with status {code} {what}"
        else:
            reason = f"the local model server did not answer {what}"
        return APIConnectionError(
            f"{reason}. Log: {self._log_path}\n{tail}".rstrip(),
            provider="local",
            model=self.config.model.alias,
            retryable=False,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                raise self._failure("while loading the model")
            try:
                with urllib.request.urlopen(self.api_base + "/models", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise self._failure(f"within {_START_TIMEOUT_S:.0f} s of starting")

    def _smoke_test(self) -> None:
        body = b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}'
        request = urllib.request.Request(
            self.api_base + "/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                resp.read()
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)  # let a crashed process be reaped so its signal can be named
            raise self._failure("on its first inference") from None

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        with self._lock:
            self._stop_process()


_SERVERS: dict[ServerConfig, ManagedServer] = {}
_SERVERS_LOCK = threading.Lock()


def _server_for(deployment: Deployment) -> ManagedServer:
    config = ServerConfig(
        model=resolve_model(deployment.model, deployment.options),
        threads=_int_setting(deployment, "n_threads", "CHATGATE_LOCAL_THREADS", _threads()),
        max_queue=_int_setting(deployment, "max_queue", "CHATGATE_LOCAL_MAX_QUEUE", 16),
        n_ctx=_int_setting(deployment, "n_ctx", "CHATGATE_LOCAL_N_CTX", 2048),
        prefix_cache=bool(
            _int_setting(deployment, "prefix_cache", "CHATGATE_LOCAL_PREFIX_CACHE", 0)
        ),
    )
    with _SERVERS_LOCK:
        server = _SERVERS.get(config)
        if server is None:
            server = _SERVERS[config] = ManagedServer(config)
        return server


async def prepare(deployment: Deployment) -> Deployment:
    """The deployment pointed at its running model server (started or restarted if needed)."""
    server = _server_for(deployment)
    api_base = await server.ensure()
    return dataclasses.replace(deployment, api_base=api_base, model=server.config.model.alias)


def running_servers() -> list[ManagedServer]:
    with _SERVERS_LOCK:
        return [server for server in _SERVERS.values() if server.alive()]


def _stop_all() -> None:
    with _SERVERS_LOCK:
        servers = list(_SERVERS.values())
    for server in servers:
        server.stop()


async def stop() -> None:
    """Stop every managed model server (the gateway calls this at shutdown)."""
    await asyncio.to_thread(_stop_all)


atexit.register(_stop_all)
