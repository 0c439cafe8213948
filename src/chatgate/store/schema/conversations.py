"""Conversations (a header and its append-only messages) and side-effect tool calls (one row
per idempotency key).

The table names and columns are exactly those ``chatgate.persistence`` created in its SQLite
file before it became part of this store, so a file it wrote is a database of this store
already: migration 14 finds the tables and keeps their rows as they are. Messages, policies
and params are JSON text (what the old file holds), never queried inside; times are epoch
seconds. Old versions of chatgate can still read and write a file upgraded this way.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, Table, Text

from chatgate.store.schema import METADATA

__all__ = ["CONVERSATIONS", "CONVERSATION_MESSAGES", "TOOL_CALLS"]

CONVERSATIONS = Table(
    "chatgate_conversations",
    METADATA,
    Column("id", Text, primary_key=True),
    Column("model", Text, nullable=False),
    Column("system", Text),
    Column("policy", Text, nullable=False),  # JSON
    Column("params", Text, nullable=False),  # JSON: request fields, never credentials
    Column("summary", Text),
    Column("summary_covers", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# The primary key is what stops two writers interleaving one conversation: both may read
# the same count, only one can insert the next seq.
CONVERSATION_MESSAGES = Table(
    "chatgate_conversation_messages",
    METADATA,
    Column("conversation_id", Text, primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("message", Text, nullable=False),  # JSON: the wire message
)

# The primary key is the idempotency guarantee: INSERT ... ON CONFLICT DO NOTHING inserts for
# exactly one of any number of racing claimers.
TOOL_CALLS = Table(
    "chatgate_tool_calls",
    METADATA,
    Column("key", Text, primary_key=True),
    Column("conversation_id", Text, nullable=False),
    Column("tool", Text, nullable=False),
    Column("arguments", Text, nullable=False),  # canonical JSON
    Column("state", Text, nullable=False),  # started | done
    Column("status", Text),
    Column("content", Text),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
)
