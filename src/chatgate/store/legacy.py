"""Copy what ``chatgate.persistence`` wrote (conversations and tool-call idempotency keys in
a SQLite file) into another database of the store, PostgreSQL say.

Opening the old file itself as the store needs nothing: its tables are the store's (see
``schema/conversations.py``). This is for moving to another database, and it is run by
hand (``chatgate store import OLD.db --to URL``): the new database is the user's choice,
and rows appearing in it from a file found on disk would surprise. The old file is opened
read-only and left as it is. Every row is inserted with ON CONFLICT DO NOTHING in one
transaction, so an import can be repeated (or interrupted and run again) and never
duplicates or overwrites anything: a row already in the target is kept as the target has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatgate.errors import ChatgateError
from chatgate.store.database import Database
from chatgate.store.schema.conversations import CONVERSATION_MESSAGES, CONVERSATIONS, TOOL_CALLS

__all__ = ["Imported", "import_sqlite_file"]

_TABLES = (CONVERSATIONS, CONVERSATION_MESSAGES, TOOL_CALLS)
_BATCH = 500  # rows per INSERT: far under SQLite's and asyncpg's bound-parameter limits


@dataclass(frozen=True)
class Imported:
    """Rows read from the old file and rows new to the target, per table."""

    read: dict[str, int]
    added: dict[str, int]


def _read(path: Path) -> dict[str, list[dict[str, Any]]]:
    if not path.is_file():
        raise ChatgateError(f"{path}: no such file")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if CONVERSATIONS.name not in present and TOOL_CALLS.name not in present:
            raise ChatgateError(f"{path} holds no conversations or tool calls to import")
        return {
            table.name: [dict(row) for row in conn.execute(f'SELECT * FROM "{table.name}"')]
            if table.name in present
            else []
            for table in _TABLES
        }


async def _insert(db: Database, conn: AsyncConnection, table: Table, rows: list[Any]) -> int:
    added = 0
    keys = [c.name for c in table.primary_key.columns]
    for start in range(0, len(rows), _BATCH):
        statement = (
            db.insert(table)
            .values(rows[start : start + _BATCH])
            .on_conflict_do_nothing(index_elements=keys)
            .returning(*table.primary_key.columns)
        )
        added += len((await conn.execute(statement)).all())
    return added


async def import_sqlite_file(path: str | Path, into: str | AsyncEngine) -> Imported:
    """Copy the conversations and tool calls of the old SQLite file ``path`` into the store
    at ``into`` (a URL or an engine), creating its schema if needed."""
    rows = await asyncio.to_thread(_read, Path(path))
    db = Database(into)
    engine = await db.ready()
    added: dict[str, int] = {}
    try:
        async with engine.begin() as conn:
            for table in _TABLES:
                columns = {c.name for c in table.columns}
                kept = [{k: v for k, v in r.items() if k in columns} for r in rows[table.name]]
                added[table.name] = await _insert(db, conn, table, kept)
    finally:
        if isinstance(into, str):
            await db.aclose()
    return Imported({name: len(r) for name, r in rows.items()}, added)
