"""The spend log (one small row per call) and its daily rollup.

``spend_log`` holds ids and numbers only. On PostgreSQL it is partitioned by ``day`` (range,
one partition a day), so retention drops whole partitions. ``spend_daily`` sums it per day,
key, team, user and model; budgets and reports read it instead of scanning raw rows. Money is
integer picodollars (1e-12 USD): exact for every listed price, summable everywhere, and a
bigint holds up to $9.2M per value.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from chatgate.store.schema import METADATA

__all__ = ["CONSOLE_LOG_INDEXES", "LEVERS", "SPEND_DAILY", "SPEND_LOG"]

# the savings recorded per call besides tiering's (chatgate.cost.savings), one column each:
# <lever>_saved_pico (added by migration 18)
LEVERS = ("cache", "prompt", "batch")

# added by migration 15: the console's log table pages newest first by (ts, record_id),
# over everything or one model; its minimum-cost filter finds the few costly calls
CONSOLE_LOG_INDEXES = frozenset({"ix_spend_log_ts", "ix_spend_log_model_ts", "ix_spend_log_cost"})

SPEND_LOG = Table(
    "spend_log",
    METADATA,
    Column("day", Date, nullable=False),
    Column("ts", Float, nullable=False),  # unix seconds, UTC
    Column("request_id", String(128)),
    Column("key_id", String(128)),
    Column("user_id", String(128)),
    Column("team_id", String(128)),
    Column("tags", String(512)),  # comma-separated
    Column("model", String(256), nullable=False),  # as requested
    Column("deployment", String(256)),
    Column("provider", String(64)),
    Column("served_model", String(256)),
    Column("stream", Boolean, nullable=False, default=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),  # both TTLs
    # the 1-hour part of the writes (added by migration 11); the server default lets an
    # older writer, which does not name it, keep inserting during a rolling upgrade
    Column("cache_write_1h_tokens", Integer, nullable=False, default=0, server_default=text("0")),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("cost_pico", BigInteger),  # NULL: price unknown
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
    Column("finish_reason", String(32)),
    Column("attempts", Integer, nullable=False, default=1),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("error", String(64)),  # error class name; NULL for a success
    # the record's unique id (added by migration 13; NULL in older rows): a replay of the
    # write-ahead file skips the ids already here, so no record is written twice
    Column("record_id", String(64)),
    # a tiered name's tier, the classifier's score and the USD saved against the premium
    # tier at the same tokens (added by migration 14; NULL for every other call)
    Column("tier", String(128)),
    Column("tier_score", Float),
    Column("saved_pico", BigInteger),
    # answered by a fallback group (NULL: not known, e.g. a row older than migration 18)
    Column("fallback", Boolean),
    *(Column(f"{lever}_saved_pico", BigInteger) for lever in LEVERS),
    # every attempt as compact JSON (chatgate.cost.attempt_log; added by migration 19): only
    # for a call with more than one attempt or an error, NULL for the rest
    Column("attempt_log", Text),
    Index("ix_spend_log_day", "day"),
    Index("ix_spend_log_key_ts", "key_id", "ts"),
    Index("ix_spend_log_team_ts", "team_id", "ts"),
    Index("ix_spend_log_request", "request_id"),
    Index("ix_spend_log_ts", "ts", "record_id"),
    Index("ix_spend_log_model_ts", "model", "ts"),
    Index("ix_spend_log_cost", "cost_pico"),
    # with ``day``: a unique index of a partitioned table must hold the partition key
    Index("ux_spend_log_record", "record_id", "day", unique=True),
    postgresql_partition_by="RANGE (day)",
)

SPEND_DAILY = Table(
    "spend_daily",
    METADATA,
    Column("day", Date, primary_key=True),
    Column("key_id", String(128), primary_key=True, default=""),
    Column("team_id", String(128), primary_key=True, default=""),
    Column("user_id", String(128), primary_key=True, default=""),
    Column("model", String(256), primary_key=True),
    Column("requests", BigInteger, nullable=False, default=0),
    Column("errors", BigInteger, nullable=False, default=0),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("cached_tokens", BigInteger, nullable=False, default=0),  # cache reads
    # the cache writes and their 1-hour part, as in spend_log (added by migration 12, which
    # fills them in from spend_log for the days it still has; server defaults as above)
    Column("cache_write_tokens", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column(
        "cache_write_1h_tokens", BigInteger, nullable=False, default=0, server_default=text("0")
    ),
    Column("cost_pico", BigInteger, nullable=False, default=0),
    Column("unpriced", BigInteger, nullable=False, default=0),  # calls whose cost was unknown
    # USD saved by tiered routing against the premium tier (added by migration 14)
    Column("saved_pico", BigInteger, nullable=False, default=0, server_default=text("0")),
    # USD saved by the response cache, prompt-cache reads, batch discounts (migration 18)
    *(
        Column(
            f"{lever}_saved_pico", BigInteger, nullable=False, default=0, server_default=text("0")
        )
        for lever in LEVERS
    ),
    Index("ix_spend_daily_key_day", "key_id", "day"),
    Index("ix_spend_daily_team_day", "team_id", "day"),
    Index("ix_spend_daily_model_day", "model", "day"),
)
