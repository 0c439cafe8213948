"""A real PostgreSQL server for tests: a throwaway cluster (initdb) on a random loopback
port, started with pg_ctl and removed afterwards. It can be stopped and started again to
simulate an outage.

PostgreSQL refuses to run as root; under root the cluster belongs to the ``postgres`` system
user and every pg_* command runs through ``runuser``. Binaries are looked up on PATH, then in
/usr/lib/postgresql/*/bin (Debian's layout; .ci/run installs them with apt).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PostgresServer", "find_bin_dir", "require_bin_dir", "running_postgres"]


def find_bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def require_bin_dir() -> Path:
    """The binaries, or a failure that says how to get them: the store tests run on a real
    PostgreSQL and never pass by skipping (.ci/run installs it)."""
    found = find_bin_dir()
    if found is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found: apt-get update && apt-get install -y "
            "postgresql (.ci/run does this)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chatgate-pg-"))
        self.data = self.root / "data"
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    def init(self) -> PostgresServer:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = str(self.root / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "180", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A server of its own, started (the tests skip where PostgreSQL is not installed);
    destroyed with its data at the end."""
    server = PostgresServer(require_bin_dir()).init()
    server.start()
    try:
        yield server
    finally:
        server.destroy()
