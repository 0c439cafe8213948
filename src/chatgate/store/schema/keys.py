"""Virtual keys: only a hash of each secret is stored; the secret is shown once, at creation."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, Numeric, String, Table

from chatgate.store.schema import METADATA

__all__ = ["VIRTUAL_KEYS"]

VIRTUAL_KEYS = Table(
    "virtual_keys",
    METADATA,
    Column("key_id", String(40), primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),  # sha256 hex
    Column("display", String(40), nullable=False),  # "sk-cg-…AbCd", safe to show
    Column("name", String(200)),
    Column("models", JSON, nullable=False),  # allowlist; [] = every model
    Column("budget_usd", Numeric(20, 10)),
    Column("budget_period", String(16)),  # daily | monthly | lifetime
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("expires_at", Float),
    Column("team", String(200)),
    Column("user_id", String(200)),
    Column("metadata", JSON, nullable=False),
    Column("tags", JSON),  # the tags its requests carry (migration 21); NULL: none
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("revoked_at", Float),
    Index("ix_virtual_keys_team", "team"),
    Index("ix_virtual_keys_user", "user_id"),
)
