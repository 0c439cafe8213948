"""Budget counters (spent and reserved per budget and period) and open reservations."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table

from chatgate.store.schema import METADATA

__all__ = ["BUDGET_COUNTERS", "BUDGET_RESERVATIONS"]

BUDGET_COUNTERS = Table(
    "budget_counters",
    METADATA,
    Column("budget_id", String(300), primary_key=True),  # scope:subject:window
    Column("period", String(16), primary_key=True),  # 2026-11-21 | 2026-11 | all
    Column("spent_pico", BigInteger, nullable=False, default=0),
    Column("reserved_pico", BigInteger, nullable=False, default=0),
)

BUDGET_RESERVATIONS = Table(
    "budget_reservations",
    METADATA,
    Column("reservation_id", String(40), primary_key=True),
    Column("budget_id", String(300), primary_key=True),
    Column("period", String(16), nullable=False),
    Column("amount_pico", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_budget_reservations_expiry", "expires_at"),
)
