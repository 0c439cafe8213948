"""Where conversations and side-effect tool calls are kept: a tiny protocol and its SQLite
implementation (the embedded default). See docs/memory.md for moving it to the shared store."""

from __future__ import annotations

from chatgate.persistence.protocol import (
    ConversationRecord,
    ConversationStore,
    IdempotencyRecord,
    IdempotencyStore,
)
from chatgate.persistence.sqlite import SQLiteStore, default_store

__all__ = [
    "ConversationRecord",
    "ConversationStore",
    "IdempotencyRecord",
    "IdempotencyStore",
    "SQLiteStore",
    "default_store",
]
