"""The web console's tables. Sessions: only a SHA-256 of each session id is stored; the id
itself lives in the browser's HttpOnly cookie, so a copy of this table signs no one in."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Float, Index, String, Table, text

from chatgate.store.schema import METADATA
from chatgate.store.schema.spend import LEVERS

__all__ = ["CONSOLE_DAILY", "CONSOLE_HOURLY", "CONSOLE_SESSIONS"]

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


def _counts(*names: str) -> list[Column[int]]:
    return [Column(name, BigInteger, nullable=False) for name in names]


def _percentiles() -> list[Column[float]]:
    return [Column(f"{v}_p{q}_ms", Float) for v in ("latency", "ttft") for q in (50, 95)]


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
    *_counts("requests", "errors", "cost_pico", "cache_hits", "retried"),
    Column("hit_tokens", BigInteger, nullable=False),  # tokens answered from the cache
    Column("paid_tokens", BigInteger, nullable=False),  # tokens of the calls not from it
    *_percentiles(),
    Column("computed_at", Float, nullable=False),
    # added by migration 18: requests a fallback group answered; USD saved by each lever
    Column("fallbacks", BigInteger, nullable=False, default=0, server_default=text("0")),
    *(
        Column(f"{lever}_saved_pico", BigInteger, nullable=False, server_default=text("0"))
        for lever in ("tier", *LEVERS)
    ),
)

# The Overview's statistics of one closed hour (migration 20; chatgate.server.hour_stats).
# ``hour`` is unix seconds // 3600 (UTC). ``dim`` is "all" (name "*": the hour's traffic, its
# exact percentiles and savings; ``requests`` is also the number of spend_log rows the hour
# had when computed, which tells a late record), or model | key | team | user | tag (the
# hour's 100 most spent subjects of each, the rest as "(other)"; tags split as the day's).
CONSOLE_HOURLY = Table(
    "console_hourly",
    METADATA,
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("dim", String(8), primary_key=True),
    Column("name", String(256), primary_key=True),
    *_counts("requests", "errors", "cost_pico", "cache_hits", "retried", "fallbacks"),
    *_counts(*(f"{lever}_saved_pico" for lever in ("tier", *LEVERS))),
    *_percentiles(),
    Column("computed_at", Float, nullable=False),
)
