"""The two things memory and tools persist, as small records behind two small protocols.

The SQL store implements both (``chatgate.store.conversations``, ``chatgate.store.idempotency``,
on SQLite or PostgreSQL); any other object that implements them can be passed as ``store=`` to
``Conversation`` and ``run_tools``. Nothing here needs SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["ConversationRecord", "ConversationStore", "IdempotencyRecord", "IdempotencyStore"]


@dataclass
class ConversationRecord:
    """A conversation exactly as it resumes: every message (wire dicts, in order), the
    summary block and how many of the oldest messages it covers."""

    id: str
    model: str
    system: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # request fields, never credentials
    summary: str | None = None
    summary_covers: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class IdempotencyRecord:
    """One side-effect tool call, keyed by (conversation, tool, canonical arguments).
    ``state`` is "started" until its outcome (``status``, ``content``) is recorded."""

    key: str
    conversation_id: str
    tool: str
    arguments: str
    state: Literal["started", "done"]
    status: str | None = None
    content: str | None = None


class ConversationStore(Protocol):
    async def load_conversation(self, conversation_id: str) -> ConversationRecord | None: ...

    async def save_conversation(self, record: ConversationRecord, *, persisted: int) -> None:
        """Write the header and append ``record.messages``, which are the messages from
        index ``persisted`` on; raise if the store does not hold exactly ``persisted``
        messages (another writer appended in between)."""
        ...


class IdempotencyStore(Protocol):
    async def claim(
        self, key: str, *, conversation_id: str, tool: str, arguments: str
    ) -> IdempotencyRecord | None:
        """Atomically mark ``key`` started. None: the caller owns it and may execute; a
        record: someone already did (or is doing) it, and the caller must not execute."""
        ...

    async def finish(self, key: str, *, status: str, content: str) -> None: ...

    async def release(self, key: str) -> None:
        """Forget a key, so the call may run again (an operator's decision after a crash)."""
        ...
