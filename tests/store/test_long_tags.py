"""A request carrying as many tags as it may, each as long as it may be (16 of 64 characters:
its key's and its own), still leaves its spend-log row on SQLite and PostgreSQL, with the
tags that fit the column, in order; before, the row was too long for PostgreSQL and held back
every record of its batch."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from chatgate.cost.budget_tags import MAX_TAG_CHARS, MAX_TAGS
from chatgate.cost.usage_sql import SqlSink
from chatgate.server.context import RequestContext, usage_record
from chatgate.server.keys import KeyRecord
from chatgate.server.request_tags import TAGS_COLUMN_CHARS, charged, fitting
from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_LOG

LONG = tuple(f"{n:02d}".ljust(MAX_TAG_CHARS, "x") for n in range(MAX_TAGS))


def test_the_bound_is_the_columns() -> None:
    assert SPEND_LOG.c.tags.type.length == TAGS_COLUMN_CHARS


def test_a_requests_own_tags_are_fitted_too() -> None:
    ctx = RequestContext(route="/v1/chat/completions", tags=LONG, requested_model="m")
    kept = usage_record(ctx).tags
    assert kept == fitting(LONG)
    assert len(",".join(kept)) <= TAGS_COLUMN_CHARS


def test_tags_that_fit_are_kept_whole() -> None:
    short = tuple(f"t{n}" for n in range(MAX_TAGS))
    assert fitting(short) == short
    assert fitting(LONG[:7]) == LONG[:7]
    kept = fitting(LONG)
    assert kept == LONG[: len(kept)]
    assert len(",".join(kept)) <= TAGS_COLUMN_CHARS < len(",".join(LONG[: len(kept) + 1]))


async def test_a_request_with_the_longest_tags_leaves_its_row(db_url: str, tmp_path: Path) -> None:
    key = KeyRecord(key_id="key_long", display="sk-cg-…long", tags=LONG[:8])
    ctx = RequestContext(
        route="/v1/chat/completions", tags=LONG[8:], key=key, key_id="key_long", requested_model="m"
    )
    other = RequestContext(route="/v1/chat/completions", requested_model="m")
    sink = await SqlSink.open(db_url, spill_path=tmp_path / "spill.jsonl", interval_s=0.01)
    sink.emit(usage_record(ctx))
    sink.emit(usage_record(other))
    await sink.aclose()
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        rows = dict((await conn.execute(select(SPEND_LOG.c.request_id, SPEND_LOG.c.tags))).all())
    await engine.dispose()
    assert rows.keys() == {ctx.request_id, other.request_id}  # neither held back
    stored = rows[ctx.request_id].split(",")
    assert stored == list(charged(key, ctx.tags)[: len(stored)])  # the key's first, in order
    assert rows[other.request_id] is None
