"""Versioned schema migrations: a small runner over the ``schema_migrations`` table.

Why not Alembic: chatgate must create and upgrade its schema from library code at start-up
(``await migrate(engine)``), with async engines, inside an installed package, and the
PostgreSQL partitioning DDL is hand-written either way; Alembic would add a script
directory, env.py and Mako for what is here an ordered list of steps. Each step runs in one
transaction (PostgreSQL and SQLite both have transactional DDL) under a lock (an advisory
lock on PostgreSQL; SQLite's BEGIN IMMEDIATE), so concurrent starters apply it once.

To add a concern: define its tables in ``schema/<concern>.py`` and append a Migration with
the next version. To add a column: add it to the table's definition (with a server default
when NOT NULL) and append a step whose ``extra`` is ``add_columns(table, name)``; a database
created since has the column from its CREATE, and the step then skips it. Never edit a
released step; add a new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import (
    Column,
    Float,
    Integer,
    String,
    Table,
    delete,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import CreateColumn

from chatgate.store.rollup import fill_cache_writes
from chatgate.store.schema import METADATA
from chatgate.store.schema.budgets import BUDGET_COUNTERS, BUDGET_RESERVATIONS
from chatgate.store.schema.console import CONSOLE_DAILY, CONSOLE_HOURLY, CONSOLE_SESSIONS
from chatgate.store.schema.conversations import (
    CONVERSATION_MESSAGES,
    CONVERSATIONS,
    TOOL_CALLS,
)
from chatgate.store.schema.keys import VIRTUAL_KEYS
from chatgate.store.schema.spend import CONSOLE_LOG_INDEXES, LEVERS, SPEND_DAILY, SPEND_LOG

__all__ = ["MIGRATIONS", "Migration", "add_columns", "current_version", "migrate"]

SCHEMA_MIGRATIONS = Table(
    "schema_migrations",
    METADATA,
    Column("version", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)
log = logging.getLogger("chatgate")
_LOCK_KEY = 0x63686174  # "chat": the advisory lock migrations hold on PostgreSQL


@dataclass(frozen=True, slots=True)
class Migration:
    """Create ``tables`` (with their indexes), then run ``extra`` (dialect-specific DDL)."""

    version: int
    name: str
    tables: tuple[Table, ...] = ()
    extra: Callable[[AsyncConnection], Awaitable[None]] | None = field(default=None)


def add_columns(table: Table, *names: str) -> Callable[[AsyncConnection], Awaitable[None]]:
    """A step's ``extra`` that adds ``table``'s columns ``names``, as the table defines them,
    where they are missing. Existing rows take the server default, so a NOT NULL column must
    have one. On PostgreSQL the ALTER reaches every partition; with a constant default it
    rewrites no rows."""
    for name in names:
        column = table.c[name]
        if not column.nullable and column.server_default is None:
            raise ValueError(
                f"{table.name}.{name}: a NOT NULL column added to an existing table needs a "
                "server_default (the value its existing rows take)"
            )

    async def extra(conn: AsyncConnection) -> None:
        present = await conn.run_sync(
            lambda sync: {c["name"] for c in inspect(sync).get_columns(table.name)}
        )
        quoted = conn.dialect.identifier_preparer.format_table(table)
        for name in names:
            if name not in present:
                ddl = CreateColumn(table.c[name]).compile(dialect=conn.dialect)
                await conn.exec_driver_sql(f"ALTER TABLE {quoted} ADD COLUMN {ddl}")

    return extra


async def _rollup_cache_writes(conn: AsyncConnection) -> None:
    await add_columns(SPEND_DAILY, "cache_write_tokens", "cache_write_1h_tokens")(conn)
    await fill_cache_writes(conn)  # the days spend_log still has; the older ones keep 0


async def _tiers(conn: AsyncConnection) -> None:
    await add_columns(SPEND_LOG, "tier", "tier_score", "saved_pico")(conn)
    await add_columns(SPEND_DAILY, "saved_pico")(conn)


async def _record_ids(conn: AsyncConnection) -> None:
    await add_columns(SPEND_LOG, "record_id")(conn)
    for index in SPEND_LOG.indexes:
        if index.name == "ux_spend_log_record":
            await conn.run_sync(index.create, checkfirst=True)


async def _adopt_conversations(conn: AsyncConnection) -> None:
    """Say once what a file written by ``chatgate.persistence`` already held: its tables are
    this step's tables, so they were kept as they are (no row copied or rewritten)."""
    counts = [
        (await conn.execute(select(func.count()).select_from(table))).scalar_one()
        for table in (CONVERSATIONS, TOOL_CALLS)
    ]
    if any(counts):
        log.info(
            "chatgate store: kept %d conversations and %d tool-call records already in this "
            "database (written by chatgate.persistence); nothing was copied",
            *counts,
        )


async def _deployment_ids(conn: AsyncConnection) -> None:
    """``spend_log.deployment`` is the router's deployment id ("smart#0") on every path. The
    gateway used to write provider/model there, which the row's own ``provider`` and
    ``served_model`` columns hold: such a value is cleared (no config is at hand to map it
    to an id). A row is one of those when its deployment is exactly provider/served_model and
    has no ``#<n>`` suffix; a configured deployment id (the library path) is kept."""
    log_ = SPEND_LOG.c
    await conn.execute(
        update(SPEND_LOG)
        .where(log_.deployment == log_.provider + "/" + log_.served_model)
        .where(~log_.deployment.contains("#", autoescape=True))
        .values(deployment=None)
    )


async def _savings(conn: AsyncConnection) -> None:
    await add_columns(SPEND_LOG, "fallback", *(f"{lever}_saved_pico" for lever in LEVERS))(conn)
    await add_columns(SPEND_DAILY, *(f"{lever}_saved_pico" for lever in LEVERS))(conn)
    names = ["fallbacks", *(f"{lever}_saved_pico" for lever in ("tier", *LEVERS))]
    await add_columns(CONSOLE_DAILY, *names)(conn)
    # stored days lack the new numbers: computed again from spend_log when next viewed
    await conn.execute(delete(CONSOLE_DAILY))


async def _console_indexes(conn: AsyncConnection) -> None:
    for index in SPEND_LOG.indexes:
        if index.name in CONSOLE_LOG_INDEXES:
            await conn.run_sync(index.create, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "spend log and daily rollup", (SPEND_LOG, SPEND_DAILY)),
    Migration(2, "budget counters and reservations", (BUDGET_COUNTERS, BUDGET_RESERVATIONS)),
    Migration(10, "virtual keys", (VIRTUAL_KEYS,)),
    Migration(
        11,
        "spend_log.cache_write_1h_tokens",
        extra=add_columns(SPEND_LOG, "cache_write_1h_tokens"),
    ),
    Migration(
        12,
        "spend_daily.cache_write_tokens, cache_write_1h_tokens (filled in from spend_log)",
        extra=_rollup_cache_writes,
    ),
    Migration(13, "spend_log.record_id (unique: replays write a record once)", extra=_record_ids),
    Migration(
        14,
        "conversations and tool-call idempotency keys (chatgate.persistence's tables)",
        (CONVERSATIONS, CONVERSATION_MESSAGES, TOOL_CALLS),
        extra=_adopt_conversations,
    ),
    Migration(
        15,
        "console sessions and daily statistics; spend_log indexes for the console's logs",
        (CONSOLE_SESSIONS, CONSOLE_DAILY),
        extra=_console_indexes,
    ),
    Migration(16, "spend_log.tier, tier_score, saved_pico; spend_daily.saved_pico", extra=_tiers),
    Migration(
        17,
        "spend_log.deployment: the deployment id; the gateway's old provider/model values cleared",
        extra=_deployment_ids,
    ),
    Migration(
        18,
        "spend_log.fallback and the savings by lever (response cache, prompt cache, batch), "
        "summed in spend_daily; console_daily's fallbacks and savings (its days recomputed)",
        extra=_savings,
    ),
    Migration(
        19,
        "spend_log.attempt_log: every attempt of a retried or failed call",
        extra=add_columns(SPEND_LOG, "attempt_log"),
    ),
    Migration(
        20,
        "console_hourly: each closed hour's Overview statistics, computed once",
        (CONSOLE_HOURLY,),
    ),
    Migration(
        21,
        "virtual_keys.tags: the tags every request made with the key carries",
        extra=add_columns(VIRTUAL_KEYS, "tags"),
    ),
)


async def _applied(conn: AsyncConnection) -> set[int]:
    await conn.run_sync(SCHEMA_MIGRATIONS.create, checkfirst=True)
    rows = await conn.execute(select(SCHEMA_MIGRATIONS.c.version))
    return {row[0] for row in rows}


async def current_version(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return max(await _applied(conn), default=0)


async def migrate(engine: AsyncEngine, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the steps not applied yet, in order; returns their versions."""
    done: list[int] = []
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        applied = await _applied(conn)
        for step in sorted(migrations, key=lambda m: m.version):
            if step.version in applied:
                continue
            for table in step.tables:
                await conn.run_sync(table.create, checkfirst=True)
            if step.extra is not None:
                await step.extra(conn)
            await conn.execute(
                SCHEMA_MIGRATIONS.insert().values(
                    version=step.version, name=step.name, applied_at=time.time()
                )
            )
            done.append(step.version)
    return done
