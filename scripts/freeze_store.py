"""Freeze the databases (and a spill file) written by the chatgate on the path, so the upgrade
tests can start from what a released version left behind.

    git archive <commit> src | tar -x -C /tmp/old       # the release whose schema to freeze
    PYTHONPATH=/tmp/old/src python scripts/freeze_store.py tests/fixtures/store v10

Writes ``<name>.sqlite.sql`` (SQLite's own dump), ``<name>.postgres.sql`` (``pg_dump
--column-inserts`` of a real server, less its comments, session settings and psql-only
lines, so any client can run it) and ``<name>.spill.jsonl`` (spill-file lines). Everything
goes through that version's own SqlSink; the records are fixed (no clock, no random ids), so
a test knows what each row holds. With a version whose records have the 1-hour part of the
cache writes (v11 on), the Nov 21 calls have 1000 of them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.postgres import PostgresServer, require_bin_dir

from chatgate.cost.usage import UsageRecord
from chatgate.cost.usage_sql import SqlSink

NOV_20 = 1795176000.0  # 2026-11-20 09:20 UTC
_DROPPED = ("--", "SET ", "SELECT pg_catalog.set_config", "\\")
HOUR_SPLIT = "cache_write_1h_tokens" in {f.name for f in fields(UsageRecord)}  # v11 on


def records() -> list[UsageRecord]:
    """Two days, two keys, cache reads and writes, an unpriced call and a failed one."""
    out = []
    for n in range(8):
        out.append(
            UsageRecord(
                ts=NOV_20 + (n % 2) * 86_400 + n,
                model="sonnet" if n % 2 else "gpt",
                request_id=f"req_{n}",
                key_id=f"key{n % 2}",
                team_id="red",
                tags=("chat", "v10") if n % 3 else (),
                deployment="anthropic/claude-sonnet-4-5",
                provider="anthropic",
                served_model="claude-sonnet-4-5",
                stream=bool(n % 2),
                prompt_tokens=3600 + n,
                completion_tokens=300,
                cached_tokens=2000,
                cache_write_tokens=1500,
                **({"cache_write_1h_tokens": 1000 * (n % 2)} if HOUR_SPLIT else {}),
                cost=Decimal("0.013275") if n != 5 else None,
                latency_ms=120.5 + n,
                ttft_ms=30.25 if n % 2 else None,
                finish_reason="stop",
                attempts=1 + n % 2,
            )
        )
    out.append(UsageRecord(ts=NOV_20 + 9, model="gpt", key_id="key0", error="RateLimitError"))
    return out


async def write(url: str, spill: Path) -> None:
    sink = await SqlSink.open(url, spill_path=spill, interval_s=3600)
    for record in records():
        sink.emit(record)
    await sink.aclose()
    assert sink.written == len(records()), sink.written


def pg_dump(server: PostgresServer) -> str:
    command = [
        str(server.bin_dir / "pg_dump"),
        "--column-inserts",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        "-h",
        "127.0.0.1",
        "-p",
        str(server.port),
        "-U",
        "postgres",
        "postgres",
    ]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    dump = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    kept = [line for line in dump.splitlines() if not line.startswith(_DROPPED)]
    return "\n".join(kept).strip() + "\n"


def main(out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "old.db"
        asyncio.run(write(f"sqlite:///{db}", Path(tmp) / "spill.jsonl"))
        with sqlite3.connect(db) as conn:
            (out / f"{name}.sqlite.sql").write_text("\n".join(conn.iterdump()) + "\n")
        server = PostgresServer(require_bin_dir()).init()
        server.start()
        try:
            asyncio.run(write(server.url, Path(tmp) / "spill.jsonl"))
            (out / f"{name}.postgres.sql").write_text(pg_dump(server))
        finally:
            server.destroy()
    lines = b"".join(r.to_json() + b"\n" for r in records())
    (out / f"{name}.spill.jsonl").write_bytes(lines)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
