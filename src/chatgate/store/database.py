"""A database the conversation and idempotency stores share: one engine, its schema brought
up to date (``migrate``) before the first use.

A store opened from a URL uses an engine without a pool (``NullPool``): each operation opens
and closes its own connection. asyncpg connections belong to the event loop that opened them,
and a Conversation is used from the caller's loop (``asend``) and from chatgate's private
sync loop (``send``) alike; with no pooled connections, one engine serves every loop and
nothing is left open when a loop ends. An operation is one exchange or one tool call, so a
connect each (~1 ms on SQLite, a few on a local PostgreSQL) is noise beside the model call.
Pass an ``AsyncEngine`` instead to pool connections on one loop of your own.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate

__all__ = ["Database", "SqlStoreBase", "shared_database"]


class Database:
    """An engine (made from ``url``, or given) and whether its schema is up to date here."""

    def __init__(self, source: str | AsyncEngine) -> None:
        if isinstance(source, str):
            try:
                self.engine = create_engine(source, poolclass=NullPool)
            except ModuleNotFoundError as exc:  # the dialect imports its driver here
                if exc.name != "asyncpg":
                    raise
                raise ImportError(
                    "a postgresql:// store needs asyncpg: pip install 'chatgate[postgres]'"
                ) from None
        else:
            self.engine = source
        self._migrated = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def insert(self, table: Any) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_nothing`` / ``_do_update``."""
        return (sqlite if self.dialect == "sqlite" else postgresql).insert(table)

    async def ready(self) -> AsyncEngine:
        """The engine, once its schema is current. Concurrent first calls may both migrate:
        ``migrate`` serializes itself in the database and applies each step once."""
        if not self._migrated:
            await migrate(self.engine)
            self._migrated = True
        return self.engine

    async def aclose(self) -> None:
        await self.engine.dispose()


class SqlStoreBase:
    """What the SQL stores share: the database they are built on."""

    def __init__(self, database: str | AsyncEngine | Database) -> None:
        """``database``: a URL (``sqlite:///file.db``, ``postgresql://...``), an engine of
        your own, or a ``Database`` shared with another store."""
        self.database = database if isinstance(database, Database) else Database(database)

    async def aclose(self) -> None:
        await self.database.aclose()


_shared: dict[str, Database] = {}
_shared_lock = threading.Lock()


def shared_database(url: str) -> Database:
    """This process's Database for ``url``: every store opened with the URL uses it, so the
    schema is checked once per process."""
    with _shared_lock:
        found = _shared.get(url)
        if found is None:
            found = _shared[url] = Database(url)
        return found
