"""Idempotency keys of side-effect tool calls in SQL (SQLite or PostgreSQL).

A claim is ``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING key``: the primary key lets
exactly one of any number of racing claimers (tasks, processes, machines) insert, and only
that one runs the call; every other claimer reads the row the winner wrote.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select, update

from chatgate.errors import ChatgateError
from chatgate.store.database import SqlStoreBase
from chatgate.store.records import IdempotencyRecord
from chatgate.store.schema.conversations import TOOL_CALLS

__all__ = ["SqlIdempotencyStore"]

T = TOOL_CALLS.c
_ATTEMPTS = 5  # a row released between our conflict and our read: claim again, a few times


class SqlIdempotencyStore(SqlStoreBase):
    """``IdempotencyStore`` on a SQL database: ``SqlIdempotencyStore("postgresql://...")``."""

    async def claim(
        self, key: str, *, conversation_id: str, tool: str, arguments: str
    ) -> IdempotencyRecord | None:
        engine = await self.database.ready()
        row = {"key": key, "conversation_id": conversation_id, "tool": tool,
               "arguments": arguments, "state": "started"}  # fmt: skip
        for _ in range(_ATTEMPTS):
            insert = (
                self.database.insert(TOOL_CALLS)
                .values(created_at=time.time(), **row)
                .on_conflict_do_nothing(index_elements=[T.key])
                .returning(T.key)
            )
            async with engine.begin() as conn:
                if (await conn.execute(insert)).first() is not None:
                    return None
            async with engine.begin() as conn:
                found = (
                    await conn.execute(
                        select(T.conversation_id, T.tool, T.arguments, T.state, T.status,
                               T.content).where(T.key == key)
                    )
                ).one_or_none()  # fmt: skip
            if found is not None:
                return IdempotencyRecord(key, *found)
        raise ChatgateError(f"idempotency key {key!r} is being claimed and released in a loop")

    async def finish(self, key: str, *, status: str, content: str) -> None:
        engine = await self.database.ready()
        async with engine.begin() as conn:
            await conn.execute(
                update(TOOL_CALLS)
                .where(T.key == key)
                .values(state="done", status=status, content=content, finished_at=time.time())
            )

    async def release(self, key: str) -> None:
        engine = await self.database.ready()
        async with engine.begin() as conn:
            await conn.execute(delete(TOOL_CALLS).where(T.key == key))
