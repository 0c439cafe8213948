"""Conversations in SQL (SQLite or PostgreSQL): a header row and append-only messages.

A save is one transaction: count the stored messages, refuse if another writer appended
since this copy was loaded, upsert the header and insert the new messages. The messages'
primary key (conversation, seq) settles a race the count check cannot see (two writers
counting at once): the second insert fails and its whole save rolls back.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from chatgate.errors import ChatgateError
from chatgate.store.database import SqlStoreBase
from chatgate.store.records import ConversationRecord
from chatgate.store.schema.conversations import CONVERSATION_MESSAGES, CONVERSATIONS

__all__ = ["SqlConversationStore"]

C = CONVERSATIONS.c
M = CONVERSATION_MESSAGES.c


def _changed(conversation_id: str, detail: str = "") -> ChatgateError:
    return ChatgateError(
        f"conversation {conversation_id!r} was changed by another writer{detail}: load it again"
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqlConversationStore(SqlStoreBase):
    """``ConversationStore`` on a SQL database: ``SqlConversationStore("postgresql://...")``."""

    async def load_conversation(self, conversation_id: str) -> ConversationRecord | None:
        engine = await self.database.ready()
        async with engine.begin() as conn:
            header = (
                await conn.execute(
                    select(
                        C.model, C.system, C.policy, C.params, C.summary, C.summary_covers
                    ).where(C.id == conversation_id)
                )
            ).one_or_none()
            if header is None:
                return None
            messages = await conn.execute(
                select(M.message).where(M.conversation_id == conversation_id).order_by(M.seq)
            )
            return ConversationRecord(
                id=conversation_id,
                model=header.model,
                system=header.system,
                policy=orjson.loads(header.policy),
                params=orjson.loads(header.params),
                summary=header.summary,
                summary_covers=header.summary_covers,
                messages=[orjson.loads(m) for (m,) in messages],
            )

    async def save_conversation(self, record: ConversationRecord, *, persisted: int) -> None:
        engine = await self.database.ready()
        header = {
            "model": record.model,
            "system": record.system,
            "policy": _json(record.policy),
            "params": _json(record.params),
            "summary": record.summary,
            "summary_covers": record.summary_covers,
            "updated_at": time.time(),
        }
        upsert = self.database.insert(CONVERSATIONS).values(
            id=record.id, created_at=header["updated_at"], **header
        )
        try:
            async with engine.begin() as conn:
                stored = (
                    await conn.execute(
                        select(func.coalesce(func.max(M.seq) + 1, 0)).where(
                            M.conversation_id == record.id
                        )
                    )
                ).scalar_one()
                if stored != persisted:
                    raise _changed(
                        record.id, f" ({stored} stored messages, this copy knew {persisted})"
                    )
                await conn.execute(upsert.on_conflict_do_update(index_elements=[C.id], set_=header))
                if record.messages:
                    await conn.execute(
                        CONVERSATION_MESSAGES.insert(),
                        [
                            {"conversation_id": record.id, "seq": persisted + n,
                             "message": _json(message)}
                            for n, message in enumerate(record.messages)
                        ],
                    )  # fmt: skip
        except IntegrityError:  # another writer appended between our count and our insert
            raise _changed(record.id) from None
