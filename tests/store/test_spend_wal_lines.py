"""The write-ahead file's lines: a record comes back equal from a line, whatever it holds; lines
written by versions before the arrays (JSON objects) still read; a line cut short, a line from
a newer format and garbage are skipped; a line is the cheaper array, not an object."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from chatgate.cost.spend_wal import WAL_FIELDS, SpendWal, parse_line, read_segment, wal_line
from chatgate.cost.usage import UsageRecord
from tests.store.spend_records import FULL

EMPTY = UsageRecord(ts=0.0, model="m")


def test_the_line_fields_are_the_records() -> None:
    assert set(WAL_FIELDS) == {f.name for f in dataclasses.fields(UsageRecord)}
    assert len(WAL_FIELDS) == len(set(WAL_FIELDS))


@pytest.mark.parametrize("record", [FULL, EMPTY], ids=["full", "empty"])
def test_a_record_comes_back_from_its_line(record: UsageRecord) -> None:
    line = wal_line(record)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert line.startswith(b"[1,[")  # no keys: half an object's cost per record
    assert parse_line(line) == record
    assert parse_line(record.to_json()) == record  # lines of versions before the arrays


def test_a_line_of_an_older_format_with_fewer_fields_takes_the_defaults() -> None:
    values = orjson.loads(wal_line(FULL))[1][:-1]  # before attempt_log existed
    assert parse_line(orjson.dumps([1, values])) == dataclasses.replace(FULL, attempt_log=None)


def test_a_segment_skips_what_it_cannot_read(tmp_path: Path) -> None:
    newer = orjson.dumps([1, [*orjson.loads(wal_line(FULL))[1], "a field from later"]])
    path = tmp_path / "x.1.wal"
    path.write_bytes(
        wal_line(FULL)
        + b"[2,[]]\n"  # a format this version does not know
        + newer
        + b"\n"
        + b"garbage\n"
        + FULL.to_json()
        + b"\n"
        + wal_line(EMPTY)[:-9]  # cut short by a crash
    )
    assert read_segment(path) == [FULL, FULL]


def test_the_wal_writes_lines_its_reader_reads(tmp_path: Path) -> None:
    wal = SpendWal(tmp_path)
    wal.open()
    wal.write([FULL, EMPTY], 2)
    wal.write([EMPTY], 3)
    (segment,) = wal.rotate()
    assert segment.path.read_bytes().startswith(b"[1,[")
    assert read_segment(segment.path) == [FULL, EMPTY, EMPTY]
    wal.close(empty=True)
