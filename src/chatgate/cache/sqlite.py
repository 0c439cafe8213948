"""A cache in one SQLite file: the embedded default, shared by the processes on one machine.

stdlib ``sqlite3`` on one dedicated worker thread: the loop never blocks on the disk, and the
core needs no extra dependency. Measured against aiosqlite and asyncio.to_thread (see
docs/caching.md): all three stay far below the 1 ms hit target. WAL mode lets several
processes read while one writes. Expired rows are never returned and are purged every
``purge_every`` writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from chatgate.cache.base import CacheBackendError

__all__ = ["SQLiteBackend"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chatgate_cache (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL
) WITHOUT ROWID
"""


class SQLiteBackend:
    """A cache backend in a local SQLite file that survives restarts; expired entries are purged
    every ``purge_every`` writes."""

    def __init__(
        self,
        path: str | Path = "chatgate-cache.db",
        *,
        purge_every: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._purge_every = purge_every
        self._clock = clock
        self._writes = 0
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="chatgate-cache-sqlite")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise CacheBackendError(f"sqlite {self.path}: {type(exc).__name__}: {exc}") from exc

    def _get(self, key: str) -> bytes | None:
        row = (
            self._conn()
            .execute(
                "SELECT value FROM chatgate_cache WHERE key = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (key, self._clock()),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        now = self._clock()
        db = self._conn()
        db.execute(
            "INSERT OR REPLACE INTO chatgate_cache (key, value, expires_at) VALUES (?, ?, ?)",
            (key, value, None if ttl is None else now + ttl),
        )
        self._writes += 1
        if self._writes % self._purge_every == 0:
            self._purge(now)

    def _purge(self, now: float) -> int:
        cursor = self._conn().execute("DELETE FROM chatgate_cache WHERE expires_at <= ?", (now,))
        return cursor.rowcount

    def _count(self) -> int:
        row = self._conn().execute("SELECT count(*) FROM chatgate_cache").fetchone()
        return int(row[0])

    def _exec(self, sql: str, *params: Any) -> None:
        self._conn().execute(sql, params)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def get(self, key: str) -> bytes | None:
        return await self._run(self._get, key)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        await self._run(self._set, key, value, ttl)

    async def delete(self, key: str) -> None:
        await self._run(self._exec, "DELETE FROM chatgate_cache WHERE key = ?", key)

    async def clear(self) -> None:
        await self._run(self._exec, "DELETE FROM chatgate_cache")

    async def purge_expired(self) -> int:
        """Delete expired rows now; returns how many."""
        return await self._run(self._purge, self._clock())

    async def count(self) -> int:
        """Rows in the file, expired ones included until they are purged."""
        return await self._run(self._count)

    async def aclose(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=False)
