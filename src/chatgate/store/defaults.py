"""What ``store=`` means for ``Conversation`` and ``run_tools``: a store object, a database
URL, or nothing (the local SQLite file ``$CHATGATE_SQLITE_PATH``, else ``./chatgate.db``:
the file conversations have always defaulted to, so what it holds stays readable).

The SQL stores are imported when first asked for, not with this module: ``Conversation``
and ``run_tools`` import it, and a program that never persists does not pay for SQLAlchemy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from chatgate.store.records import ConversationStore, IdempotencyStore

__all__ = ["SQLITE_PATH_ENV", "conversation_store", "default_url", "idempotency_store"]

SQLITE_PATH_ENV = "CHATGATE_SQLITE_PATH"
DEFAULT_PATH = "chatgate.db"


def default_url(env: Mapping[str, str] | None = None) -> str:
    """The default file, made absolute now: each operation opens its own connection, and a
    later ``chdir`` must not move a conversation to another file."""
    environ = os.environ if env is None else env
    return f"sqlite:///{Path(environ.get(SQLITE_PATH_ENV) or DEFAULT_PATH).absolute()}"


def conversation_store(store: ConversationStore | str | None) -> ConversationStore:
    """``store`` itself, or the SQL store of its URL (the default one for None)."""
    if store is not None and not isinstance(store, str):
        return store
    from chatgate.store.conversations import SqlConversationStore
    from chatgate.store.database import shared_database

    return SqlConversationStore(shared_database(store or default_url()))


def idempotency_store(store: IdempotencyStore | str | None) -> IdempotencyStore:
    """``store`` itself, or the SQL store of its URL (the default one for None)."""
    if store is not None and not isinstance(store, str):
        return store
    from chatgate.store.database import shared_database
    from chatgate.store.idempotency import SqlIdempotencyStore

    return SqlIdempotencyStore(shared_database(store or default_url()))
