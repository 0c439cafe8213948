"""The spend log's write-ahead file: usage records on local disk before the database has them.

A directory of JSON Lines segments: each line one record, a JSON array (``wal_line``):
a format number, then the record's fields in ``WAL_FIELDS`` order (half the cost of a
JSON object per record, the keys left out). Lines written as objects (``to_json``: spill
files and segments of versions before the arrays) are read too.

Each process owns ``<owner>.lock`` (held with ``flock`` while it runs) and appends to
``<owner>.<n>.wal``; a segment is closed past ``segment_bytes`` and deleted once every
record in it is in the database. Writes come in groups: one
``write`` and one ``fdatasync`` for every record that arrived since the last group.

At start a process takes over the segments of every owner whose lock is free (that process
has died) and hands them to the spend writer to replay. Records carry a unique id and the
writer skips ids the database already has, so a replay cut short by another crash writes no
row twice. A spill file left by a version before the WAL is taken over the same way.

Thread-safe: the spend writer calls ``write`` in a worker thread, so a slow disk never holds
the event loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import secrets
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from chatgate.cost.usage import UsageRecord, decimal_str

__all__ = ["WAL_FIELDS", "Segment", "SpendWal", "parse_line", "read_segment", "wal_line"]

log = logging.getLogger("chatgate.spend")

_SUFFIX = ".wal"

if sys.platform == "win32":  # no flock: one gateway process per WAL directory

    def _try_lock(fd: int) -> bool:
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


_sync = getattr(os, "fdatasync", os.fsync)

# A line's fields, in order. Append only: a line written before a field was added reads
# with that field's default (tests/store/test_spend_wal_lines.py holds it to UsageRecord).
WAL_FIELDS = (
    "ts",
    "model",
    "request_id",
    "key_id",
    "user_id",
    "team_id",
    "tags",
    "deployment",
    "provider",
    "served_model",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost",
    "latency_ms",
    "ttft_ms",
    "finish_reason",
    "attempts",
    "cache_hit",
    "error",
    "record_id",
    "tier",
    "tier_score",
    "saved",
    "fallback",
    "cache_saved",
    "prompt_saved",
    "batch_saved",
    "attempt_log",
)
_FORMAT = 1  # the first value of a line
_values = operator.attrgetter(*WAL_FIELDS)
_NEWLINE = orjson.OPT_APPEND_NEWLINE


def wal_line(record: UsageRecord) -> bytes:
    """``[1, [ts, model, ...]]`` and a newline."""
    try:
        return orjson.dumps((_FORMAT, _values(record)), default=decimal_str, option=_NEWLINE)
    except TypeError:  # an int past 64 bits (a malformed upstream's usage): orjson refuses it
        line = json.dumps([_FORMAT, list(_values(record))], default=decimal_str)
        return line.encode() + b"\n"


def parse_line(line: bytes) -> UsageRecord:
    """A record from a line of ``wal_line`` or ``UsageRecord.to_json``. Raises ValueError
    (or orjson's error, a subclass) for a line it cannot read."""
    data = orjson.loads(line)
    if isinstance(data, dict):
        return UsageRecord.from_fields(data)
    if not isinstance(data, list) or len(data) != 2 or data[0] != _FORMAT:
        raise ValueError("not a spend WAL line")
    values = data[1]
    if not isinstance(values, list) or len(values) > len(WAL_FIELDS):
        raise ValueError("a spend WAL line from a newer version")
    return UsageRecord.from_fields(dict(zip(WAL_FIELDS, values, strict=False)))


@dataclass(slots=True)
class Segment:
    path: Path
    last_seq: int = 0  # the sequence number of the last record written to it
    size: int = 0  # bytes known to be written and synced


def read_segment(path: Path) -> list[UsageRecord]:
    """The records of a segment; a line cut short by a crash or a full disk is skipped."""
    records = []
    for line in path.read_bytes().splitlines():
        if not line:
            continue
        try:
            records.append(parse_line(line))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("spend WAL: skipped an unreadable line in %s", path)
    return records


def _legacy_records(path: Path) -> list[UsageRecord]:
    """A pre-WAL spill file's records, with ids made from each line's bytes (and how many
    times that line came before), so taking over the same file twice gives the same ids."""
    seen: dict[bytes, int] = {}
    records = []
    for line in path.read_bytes().splitlines():
        if not line:
            continue
        n = seen[line] = seen.get(line, -1) + 1
        try:
            record = UsageRecord.from_json(line)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("spend spill file: skipped an unreadable line in %s", path)
            continue
        if record.record_id is None:
            digest = hashlib.blake2b(line + n.to_bytes(4, "big"), digest_size=12).hexdigest()
            record.record_id = f"spill-{digest}"
        records.append(record)
    return records


class SpendWal:
    def __init__(self, directory: str | Path, *, segment_bytes: int = 4 << 20) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.owner = f"{os.getpid():x}-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._adopted_locks: list[tuple[Path, int]] = []
        self._closed: list[Segment] = []
        self._current: Segment | None = None
        self._fd: int | None = None
        self._next = 1

    def open(self, legacy: Sequence[Path] = ()) -> list[Path]:
        """Take this process's lock; return the segments of dead owners (and of ``legacy``
        spill files, converted) for the caller to replay, oldest owner first."""
        self._take_lock()
        owners = sorted({p.name.split(".", 1)[0] for p in self.directory.glob(f"*{_SUFFIX}")})
        adopted: list[Path] = []
        for owner in owners:
            if owner == self.owner:
                continue
            path = self._lock_path(owner)
            if path not in {held for held, _ in self._adopted_locks}:  # (an open tried again)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                if not _try_lock(fd):  # a live process: its segments are its own
                    os.close(fd)
                    continue
                self._adopted_locks.append((path, fd))
            adopted += sorted(
                self.directory.glob(f"{owner}.*{_SUFFIX}"), key=lambda p: _number(p.name)
            )
        for path in self.directory.glob("*.lock"):  # dead owners that never wrote a record
            owner = path.name.removesuffix(".lock")
            if owner != self.owner and owner not in owners:
                fd = os.open(path, os.O_RDWR)
                if _try_lock(fd):
                    path.unlink(missing_ok=True)
                os.close(fd)
        for spill in legacy:
            if spill.exists():
                adopted.append(self._take_over(spill))
        return adopted

    def _take_lock(self) -> None:
        """Hold this process's lock before its first segment exists: a process starting
        meanwhile must not take the segments of a live one."""
        if self._lock_fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self._lock_path(self.owner), os.O_RDWR | os.O_CREAT, 0o600)
            _try_lock(self._lock_fd)

    def _take_over(self, spill: Path) -> Path:
        records = _legacy_records(spill)
        target = self.directory / f"{self.owner}.0{_SUFFIX}"
        scratch = target.with_name(target.name + ".tmp")
        scratch.write_bytes(b"".join(map(wal_line, records)))
        with scratch.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(scratch, target)
        self._sync_directory()
        spill.unlink()
        log.warning("spend log: took over %d records from %s", len(records), spill)
        return target

    def write(self, records: Sequence[UsageRecord], last_seq: int) -> None:
        """Append ``records`` (the last has sequence number ``last_seq``) and sync them. On an
        error the segment is cut back to its last synced size and the error raised: the
        caller still holds the records and tries again later."""
        data = b"".join(map(wal_line, records))
        with self._lock:
            segment, fd = self._segment()
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                _sync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, segment.size)
                except OSError:
                    log.exception("spend WAL: could not cut %s back", segment.path)
                raise
            segment.size += len(data)
            segment.last_seq = last_seq
            if segment.size >= self.segment_bytes:
                self._close_current()

    def _segment(self) -> tuple[Segment, int]:
        if self._current is None or self._fd is None:
            self._take_lock()
            path = self.directory / f"{self.owner}.{self._next}{_SUFFIX}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                self._sync_directory()
            except OSError:
                os.close(fd)
                raise
            self._next += 1
            self._current, self._fd = Segment(path), fd
        return self._current, self._fd

    def _close_current(self) -> None:
        if self._current is not None and self._fd is not None:
            os.close(self._fd)
            self._closed.append(self._current)
        self._current = self._fd = None

    def rotate(self) -> list[Segment]:
        """Close the segment being written; return every closed segment still on disk."""
        with self._lock:
            self._close_current()
            return list(self._closed)

    def release(self, committed_seq: int) -> None:
        """Delete the closed segments whose every record is in the database. Called on the
        event loop: while a write holds the lock it does nothing (the next call will)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            keep = []
            for segment in self._closed:
                if segment.last_seq <= committed_seq:
                    segment.path.unlink(missing_ok=True)
                else:
                    keep.append(segment)
            self._closed = keep
        finally:
            self._lock.release()

    def forget_adopted(self) -> None:
        """Every adopted segment is replayed (and deleted): drop the dead owners' locks."""
        for path, fd in self._adopted_locks:
            path.unlink(missing_ok=True)
            os.close(fd)
        self._adopted_locks = []

    def close(self, *, empty: bool) -> None:
        """Stop writing. ``empty``: every record is in the database, so the files go; else
        they stay (with the lock released) for the next start to replay."""
        with self._lock:
            self._close_current()
            if empty:
                for segment in self._closed:
                    segment.path.unlink(missing_ok=True)
                self._closed = []
                self._lock_path(self.owner).unlink(missing_ok=True)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        for _, fd in self._adopted_locks:
            os.close(fd)
        self._adopted_locks = []

    def _lock_path(self, owner: str) -> Path:
        return self.directory / f"{owner}.lock"

    def _sync_directory(self) -> None:
        """A new file's name must survive a crash too (POSIX: sync the directory)."""
        if sys.platform == "win32":
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _number(name: str) -> int:
    middle = name.removesuffix(_SUFFIX).rsplit(".", 1)[-1]
    return int(middle) if middle.isdigit() else 0
