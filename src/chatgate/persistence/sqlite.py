"""The SQLite store: one file, WAL mode, safe for several processes on one machine.

sqlite3 is blocking, so every operation runs in a worker thread; a lock serialises this
store's use of its one connection.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from chatgate.errors import ChatgateError
from chatgate.persistence.protocol import ConversationRecord, IdempotencyRecord

__all__ = ["SQLiteStore", "default_store"]

T = TypeVar("T")

DEFAULT_PATH_ENV = "CHATGATE_SQLITE_PATH"
DEFAULT_PATH = "chatgate.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chatgate_conversations (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    system TEXT,
    policy TEXT NOT NULL,
    params TEXT NOT NULL,
    summary TEXT,
    summary_covers INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chatgate_conversation_messages (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS chatgate_tool_calls (
    key TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT,
    content TEXT,
    created_at REAL NOT NULL,
    finished_at REAL
);
"""


class SQLiteStore:
    """Conversations and idempotency keys in one SQLite file (created on first use)."""

    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            # WAL + NORMAL: a commit survives a crash of this process; only a power loss
            # can undo the last transactions (the file itself is never corrupted).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn(self._connect())

        return await asyncio.to_thread(locked)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- conversations -------------------------------------------------------------------

    async def load_conversation(self, conversation_id: str) -> ConversationRecord | None:
        def load(conn: sqlite3.Connection) -> ConversationRecord | None:
            row = conn.execute(
                "SELECT model, system, policy, params, summary, summary_covers "
                "FROM chatgate_conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                return None
            messages = conn.execute(
                "SELECT message FROM chatgate_conversation_messages "
                "WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
            return ConversationRecord(
                id=conversation_id,
                model=row[0],
                system=row[1],
                policy=orjson.loads(row[2]),
                params=orjson.loads(row[3]),
                summary=row[4],
                summary_covers=row[5],
                messages=[orjson.loads(m[0]) for m in messages],
            )

        return await self._run(load)

    async def save_conversation(self, record: ConversationRecord, *, persisted: int) -> None:
        def save(conn: sqlite3.Connection) -> None:
            now = time.time()
            with conn:  # one transaction: header and new messages together, or nothing
                (stored,) = conn.execute(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM chatgate_conversation_messages "
                    "WHERE conversation_id = ?",
                    (record.id,),
                ).fetchone()
                if stored != persisted:
                    raise ChatgateError(
                        f"conversation {record.id!r} was changed by another writer "
                        f"({stored} stored messages, this copy knew {persisted}): load it again"
                    )
                conn.execute(
                    "INSERT INTO chatgate_conversations (id, model, system, policy, params, "
                    "summary, summary_covers, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                    "model = excluded.model, system = excluded.system, "
                    "policy = excluded.policy, params = excluded.params, "
                    "summary = excluded.summary, summary_covers = excluded.summary_covers, "
                    "updated_at = excluded.updated_at",
                    (
                        record.id,
                        record.model,
                        record.system,
                        orjson.dumps(record.policy).decode(),
                        orjson.dumps(record.params).decode(),
                        record.summary,
                        record.summary_covers,
                        now,
                        now,
                    ),
                )
                conn.executemany(
                    "INSERT INTO chatgate_conversation_messages (conversation_id, seq, message) "
                    "VALUES (?, ?, ?)",
                    [
                        (record.id, persisted + n, orjson.dumps(message).decode())
                        for n, message in enumerate(record.messages)
                    ],
                )

        try:
            await self._run(save)
        except sqlite3.IntegrityError:  # another process appended between our check and insert
            raise ChatgateError(
                f"conversation {record.id!r} was changed by another writer: load it again"
            ) from None

    # --- idempotency keys ----------------------------------------------------------------

    async def claim(
        self, key: str, *, conversation_id: str, tool: str, arguments: str
    ) -> IdempotencyRecord | None:
        def claim(conn: sqlite3.Connection) -> IdempotencyRecord | None:
            with conn:
                inserted = conn.execute(
                    "INSERT INTO chatgate_tool_calls (key, conversation_id, tool, arguments, "
                    "state, created_at) VALUES (?, ?, ?, ?, 'started', ?) "
                    "ON CONFLICT(key) DO NOTHING",
                    (key, conversation_id, tool, arguments, time.time()),
                ).rowcount
            if inserted:
                return None
            row = conn.execute(
                "SELECT conversation_id, tool, arguments, state, status, content "
                "FROM chatgate_tool_calls WHERE key = ?",
                (key,),
            ).fetchone()
            return IdempotencyRecord(key, *row)

        return await self._run(claim)

    async def finish(self, key: str, *, status: str, content: str) -> None:
        def finish(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    "UPDATE chatgate_tool_calls SET state = 'done', status = ?, content = ?, "
                    "finished_at = ? WHERE key = ?",
                    (status, content, time.time(), key),
                )

        await self._run(finish)

    async def release(self, key: str) -> None:
        def release(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("DELETE FROM chatgate_tool_calls WHERE key = ?", (key,))

        await self._run(release)


_default: dict[str, SQLiteStore] = {}


def default_store(env: Any = None) -> SQLiteStore:
    """The process's SQLite store: $CHATGATE_SQLITE_PATH, else ./chatgate.db."""
    environ = os.environ if env is None else env
    path = environ.get(DEFAULT_PATH_ENV) or DEFAULT_PATH
    store = _default.get(path)
    if store is None:
        store = _default[path] = SQLiteStore(path)
    return store
