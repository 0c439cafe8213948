"""Console sessions, kept in the gateway's database so every worker and instance knows them.

The cookie holds a random 256-bit id; the table holds only its SHA-256, so reading the table
signs no one in. The CSRF token is an HMAC of the id (nothing more to store): the page gets
it from ``GET /ui/session`` and sends it in ``X-CSRF-Token`` with every change; another
site can neither read it nor, with a SameSite=Strict cookie, send the cookie at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.store.schema.console import CONSOLE_SESSIONS

__all__ = ["SESSION_TTL_S", "Session", "SessionStore", "csrf_token", "master_subject"]

SESSION_TTL_S = 12 * 3600


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"chatgate-console-csrf", hashlib.sha256).hexdigest()


def master_subject(master_key: str) -> str:
    """The master key's subject: a fingerprint, so a changed master key ends its sessions."""
    return "master:" + hashlib.sha256(b"console:" + master_key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Session:
    subject: str
    expires_at: float


class SessionStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._clock = clock

    async def open(self, subject: str) -> tuple[str, Session]:
        """A new session for ``subject``: (the id for the cookie, the session)."""
        now = self._clock()
        session_id = secrets.token_urlsafe(32)
        session = Session(subject, now + self._ttl_s)
        async with self._engine.begin() as conn:
            # sweep the expired ones here, at sign-in: no background task needed
            await conn.execute(delete(CONSOLE_SESSIONS).where(CONSOLE_SESSIONS.c.expires_at <= now))
            await conn.execute(
                insert(CONSOLE_SESSIONS).values(
                    session_hash=_digest(session_id),
                    subject=subject,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
        return session_id, session

    async def get(self, session_id: str) -> Session | None:
        """The live session with this id, or None (unknown, signed out or expired)."""
        query = select(CONSOLE_SESSIONS.c.subject, CONSOLE_SESSIONS.c.expires_at).where(
            CONSOLE_SESSIONS.c.session_hash == _digest(session_id)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or row.expires_at <= self._clock():
            return None
        return Session(row.subject, row.expires_at)

    async def close(self, session_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(CONSOLE_SESSIONS).where(
                    CONSOLE_SESSIONS.c.session_hash == _digest(session_id)
                )
            )
