"""The web console's tables. Sessions: only a SHA-256 of each session id is stored; the id
itself lives in the browser's HttpOnly cookie, so a copy of this table signs no one in."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Float, Index, String, Table, text

from chatgate.store.schema import METADATA
from chatgate.store.schema.spend import LEVERS

__all__ = ["CONSOLE_DAILY", "CONSOLE_SESSIONS"]

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

# The Overview's statistics of one closed day, computed once from spend_log and spend_daily
# the first time a chart needs that day (chatgate.server.overview_days). ``dim`` is "all"
# (name "*": the day's traffic and its percentiles), or model | key | team | user | tag (name:
# the subject; the day's 100 most spent subjects of each, the rest as "(other)"; a call with
# two tags counts under both, one with none under "(none)").
CONSOLE_DAILY = Table(
    "console_daily",
    METADATA,
    Column("day", Date, primary_key=True),
    Column("dim", String(8), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("cost_pico", BigInteger, nullable=False),
    Column("cache_hits", BigInteger, nullable=False),
    Column("retried", BigInteger, nullable=False),
    Column("hit_tokens", BigInteger, nullable=False),  # tokens answered from the cache
    Column("paid_tokens", BigInteger, nullable=False),  # tokens of the calls not from it
    Column("latency_p50_ms", Float),
    Column("latency_p95_ms", Float),
    Column("ttft_p50_ms", Float),
    Column("ttft_p95_ms", Float),
    Column("computed_at", Float, nullable=False),
    # added by migration 18: requests a fallback group answered; USD saved by each lever
    Column("fallbacks", BigInteger, nullable=False, default=0, server_default=text("0")),
    *(
        Column(f"{lever}_saved_pico", BigInteger, nullable=False, server_default=text("0"))
        for lever in ("tier", *LEVERS)
    ),
)
