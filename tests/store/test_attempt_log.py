"""The attempt log's column value: nothing for a first-try answer, at most MAX_ATTEMPTS
entries, messages cut and scrubbed; the library's records carry it too."""

from __future__ import annotations

import orjson

from chatgate.cost.attempt_log import MAX_ATTEMPTS, MAX_MESSAGE, attempts_json, read_attempts
from chatgate.cost.spend_wal import parse_line, wal_line
from chatgate.cost.usage import UsageRecord
from chatgate.errors import InternalServerError
from chatgate.meta import Attempt

# a fake in a real key's shape (built here so that no file holds a key-shaped string)
KEY = "-".join(("sk", "proj", "AbCdEfGhIjKlMnOpQrStUv0123456789"))


def failure(n: int, message: str = "boom") -> Attempt:
    return Attempt(
        deployment=f"g#{n}",
        model="openai/gpt-4o",
        error="InternalServerError",
        status_code=500,
        message=message,
        wait_s=0.25,
        latency_ms=12.345,
    )


def test_a_first_try_answer_stores_nothing() -> None:
    assert attempts_json(None) is None
    assert attempts_json([]) is None
    assert attempts_json([Attempt(deployment="g#0", model="openai/gpt-4o")]) is None


def test_a_lone_failure_is_stored_in_plain_names() -> None:
    stored = attempts_json([failure(0)])
    assert read_attempts(stored) == [
        {
            "deployment": "g#0",
            "model": "openai/gpt-4o",
            "error": "InternalServerError",
            "status_code": 500,
            "message": "boom",
            "wait_s": 0.25,
            "latency_ms": 12.3,
            "skipped": None,
        }
    ]


def test_a_long_walk_keeps_the_first_and_the_last_and_cuts_messages() -> None:
    log = [failure(n, f"{KEY} " + "x" * 5000) for n in range(100)]
    log.append(Attempt(deployment="last#0", model="openai/gpt-4o-mini"))
    stored = attempts_json(log)
    assert stored is not None
    entries = read_attempts(stored)
    assert len(entries) == MAX_ATTEMPTS
    assert entries[0]["deployment"] == "g#0"
    assert entries[-1]["deployment"] == "last#0"
    assert all(len(e["message"] or "") <= MAX_MESSAGE for e in entries)
    assert KEY not in stored
    assert len(stored) < MAX_ATTEMPTS * 400


def test_a_bad_stored_value_reads_as_none() -> None:
    assert read_attempts("{not json") == []
    assert read_attempts(orjson.dumps({"d": 1}).decode()) == []
    assert read_attempts(None) == []


def test_the_library_record_of_a_failed_call_keeps_its_attempts() -> None:
    exc = InternalServerError("boom", model="g", status_code=500)
    exc.attempt_log = [failure(0), failure(1)]
    record = UsageRecord.failed("g", exc)
    assert [e["deployment"] for e in read_attempts(record.attempt_log)] == ["g#0", "g#1"]
    assert parse_line(wal_line(record)) == record  # survives the write-ahead file
    assert UsageRecord.from_json(record.to_json()) == record  # and a JSONL usage file
