"""Async engines for a database URL: ``sqlite:///path.db`` (the default) or ``postgresql://``.

Plain URLs are given their async driver (aiosqlite, asyncpg). SQLite connections get WAL,
a busy timeout and ``BEGIN IMMEDIATE`` transactions: a writer takes the write lock when it
starts, so two processes never deadlock upgrading read locks, and the conditional updates
budgets rely on are serialized across processes.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

try:
    from sqlalchemy import event
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("the SQL store needs SQLAlchemy: pip install 'chatgate[sql]'") from exc

__all__ = ["DEFAULT_URL", "create_engine", "dialect_of", "normalize_url"]

DEFAULT_URL = "sqlite:///chatgate.db"
_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        return parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        return parsed
    raise ValueError(
        f"database_url {parsed.render_as_string(hide_password=True)!r}: use sqlite:///file.db "
        "or postgresql://user@host/db"
    )


def dialect_of(engine: AsyncEngine) -> str:
    return engine.dialect.name  # "sqlite" | "postgresql"


def _enable_wal(cursor: Any) -> None:
    """Switch a database file to WAL once. The switch takes an exclusive lock and SQLite does
    not wait for it with the busy timeout: processes opening a new file together (gateway
    workers, say) can see "database is locked". Once a file is in WAL mode it stays so, and
    reading the mode takes no lock, so only the first opens ever retry (briefly)."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    for attempt in range(100):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 99:
                raise
            time.sleep(0.02)  # at connect time only, on a file not yet in WAL mode


def _sqlite_setup(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str = DEFAULT_URL, **options: Any) -> AsyncEngine:
    """An AsyncEngine for ``url``; ``options`` go to SQLAlchemy (pool_size, echo, ...).
    SQL parameters never appear in its errors or logs: they hold secret hashes and content."""
    parsed = normalize_url(url)
    options["hide_parameters"] = True
    if parsed.drivername.startswith("sqlite"):
        engine = create_async_engine(parsed, **options)
        _sqlite_setup(engine)
        return engine
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, **options)
