"""Kept so code written against ``chatgate.persistence`` keeps working: conversations and
idempotency keys now live in the SQL store (``chatgate.store``, SQLite or PostgreSQL). The
protocols are re-exported from ``chatgate.store.records``; ``SQLiteStore(path)`` is the SQL
store on that file, which reads what the old SQLiteStore wrote (the same tables)."""

from __future__ import annotations

from pathlib import Path

from chatgate.store.conversations import SqlConversationStore
from chatgate.store.defaults import DEFAULT_PATH
from chatgate.store.idempotency import SqlIdempotencyStore
from chatgate.store.records import (
    ConversationRecord,
    ConversationStore,
    IdempotencyRecord,
    IdempotencyStore,
)

__all__ = [
    "ConversationRecord",
    "ConversationStore",
    "IdempotencyRecord",
    "IdempotencyStore",
    "SQLiteStore",
]


class SQLiteStore(SqlConversationStore, SqlIdempotencyStore):
    """Both stores on one SQLite file; ``SqlConversationStore("sqlite:///path")`` is the
    current spelling."""

    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = str(path)
        super().__init__(f"sqlite:///{self.path}")

    def close(self) -> None:
        """Nothing to close: each operation opens and closes its own connection."""
