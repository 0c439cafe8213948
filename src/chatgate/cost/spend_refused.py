"""Spend records the database refuses for what they hold, not because it is down.

A batch is one transaction, and a failed write keeps every record of it to try again: right
for an outage, but one record the database can never take (a string longer than its column,
a number out of range) would then hold back every record behind it, forever. So a write
that fails with a data error (``refused_for_data``) is split in halves, each written on its
own, down to the one record that is refused; that record is written again cut to fit
(``fitted``: strings cut to their column's length, tags to the ones whose joined text fits),
and only if it is still refused is it set aside in ``refused-<owner>.jsonl`` in the WAL's
directory (one JSON object a line, as ``UsageRecord.to_json``: ``UsageRecord.from_json``
reads it back once the cause is fixed), counted and logged. Nothing is lost and nothing is
blocked; the good records of the batch are written at once. No cost on the usual path: this
runs only after a failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import String
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from chatgate.cost.spend_sql import SpendWriter
from chatgate.cost.usage import UsageRecord
from chatgate.store.schema.spend import SPEND_LOG

__all__ = ["Apart", "fitted", "refused_for_data", "set_aside", "write_apart"]

log = logging.getLogger("chatgate.spend")

_LENGTHS = {
    column.name: column.type.length
    for column in SPEND_LOG.c
    if isinstance(column.type, String) and column.type.length
}
_TAGS_CHARS = _LENGTHS.pop("tags")
_FIELDS = {field.name for field in dataclasses.fields(UsageRecord)}


def refused_for_data(exc: BaseException) -> bool:
    """The database (or the driver, binding a value) refused what a record holds; the same
    write would fail again. Connection and server failures are not this: they pass."""
    seen: BaseException | None = exc
    for _ in range(6):  # SQLAlchemy's error, the DBAPI adapter's, the driver's
        if seen is None:
            return False
        if isinstance(seen, DataError | IntegrityError):
            return True
        if isinstance(seen, StatementError) and not isinstance(seen, DBAPIError):
            return True  # a bind processor failed on a value
        # PostgreSQL's SQLSTATE classes 22 (data exception: too long, out of range, a NUL)
        # and 23 (a constraint); asyncpg's adapter reports them as a generic DBAPIError
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state[:2] in {"22", "23"}:
            return True
        # a driver refusing to bind a value (sqlite3: an int over 64 bits; asyncpg's DataError)
        if isinstance(seen, OverflowError | ValueError | TypeError):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


@dataclasses.dataclass
class Apart:
    """What writing a refused batch apart did: the rows it added, the records refused on
    their own (each with why), or the outage met on the way (then the caller keeps all)."""

    written: int = 0
    refused: list[tuple[UsageRecord, Exception]] = dataclasses.field(default_factory=list)
    outage: Exception | None = None


async def write_apart(writer: SpendWriter, batch: Sequence[UsageRecord], exc: Exception) -> Apart:
    """Write ``batch``, refused for its data with ``exc``, in halves (each its own
    transaction, deduplicated: one may land before the other fails) down to the records
    refused alone; each of those is tried once more cut to fit (``fitted``)."""
    apart = Apart()
    await _halves(writer, batch, exc, apart)
    if apart.outage is not None:
        return apart
    refused, apart.refused = apart.refused, []
    for record, why in refused:
        cut = fitted(record)
        if cut is None:
            apart.refused.append((record, why))
            continue
        try:
            apart.written += await writer.write([cut], dedupe=True)
            log.warning("spend log: record %s cut to fit its columns", record.record_id)
        except Exception as again:
            if not refused_for_data(again):
                apart.outage = again
                return apart
            apart.refused.append((record, again))
    return apart


async def _halves(
    writer: SpendWriter, batch: Sequence[UsageRecord], exc: Exception, apart: Apart
) -> None:
    if len(batch) == 1:
        apart.refused.append((batch[0], exc))
        return
    for half in (batch[: len(batch) // 2], batch[len(batch) // 2 :]):
        try:
            apart.written += await writer.write(half, dedupe=True)
        except Exception as again:
            if not refused_for_data(again):
                apart.outage = again
                return
            await _halves(writer, half, again, apart)
            if apart.outage is not None:
                return


def fitted(record: UsageRecord) -> UsageRecord | None:
    """``record`` with each string cut to its column's length, its tags to those whose
    comma-joined text fits, and NUL characters (which PostgreSQL's text refuses; a client can
    send one in ``user``) replaced by U+FFFD; None when nothing needed changing."""
    changes: dict[str, Any] = {}
    for name, length in _LENGTHS.items():
        value = getattr(record, name, None) if name in _FIELDS else None
        if isinstance(value, str) and (len(value) > length or "\x00" in value):
            changes[name] = value.replace("\x00", "\ufffd")[:length]
    tags = tuple(tag.replace("\x00", "\ufffd") for tag in record.tags)
    if len(",".join(tags)) > _TAGS_CHARS:
        kept: list[str] = []
        used = -1
        for tag in tags:
            if used + 1 + len(tag) > _TAGS_CHARS:
                break
            kept.append(tag)
            used += 1 + len(tag)
        tags = tuple(kept)
    if tags != record.tags:
        changes["tags"] = tags
    return dataclasses.replace(record, **changes) if changes else None


async def set_aside(directory: Path, owner: str, record: UsageRecord, exc: BaseException) -> bool:
    """Append ``record`` durably to the directory's ``refused-<owner>.jsonl`` and log it;
    False when the disk refused too (the caller keeps the record and tries again)."""
    path = directory / f"refused-{owner}.jsonl"
    try:
        line = record.to_json()
    except TypeError:  # a value JSON cannot hold (an int over 64 bits): the record as Python
        line = orjson.dumps({"unreadable_record": repr(record)})
    try:
        await asyncio.to_thread(_append, path, line + b"\n")
    except OSError as disk:
        log.error("spend log: cannot set a refused record aside (%s); retrying", disk)
        return False
    why = type(exc).__name__
    log.error(
        "spend log: the database refused record %s (%s); set aside in %s",
        record.record_id,
        why,
        path,
    )
    return True


def _append(path: Path, line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
