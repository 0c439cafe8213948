"""Web console sessions: only a SHA-256 of each session id is stored; the id itself lives in
the browser's HttpOnly cookie, so a copy of this table signs no one in."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table

from chatgate.store.schema import METADATA

__all__ = ["CONSOLE_SESSIONS"]

CONSOLE_SESSIONS = Table(
    "console_sessions",
    METADATA,
    Column("session_hash", String(64), primary_key=True),  # sha256 hex of the cookie's id
    # "master:<fingerprint of the master key>" or "key:<key_id>" (an admin virtual key)
    Column("subject", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_console_sessions_expiry", "expires_at"),
)
