"""The SQL spend log: usage records kept in memory, on local disk and in the database.

``emit`` gives the record a unique id and appends it to a queue; that is all a request
pays. Two background loops take it from there:

- the WAL loop, every ``wal_window_s`` (20 ms), appends every new record to the write-ahead
  file (``spend_wal``) with one write and one fdatasync, in a worker thread (group commit);
- the database loop, every ``interval_s`` (or when ``batch_size`` records wait), writes
  batches to the database (``spend_sql``) and deletes the WAL segments whose records are all
  in it.

A record leaves memory only once it is in the database, or, while the database is behind
(more than ``max_buffer`` records waiting), once it is in the WAL: those are read back from
the WAL when the database answers again. A write that fails, to either, keeps its records
and is tried again with backoff (doubling up to ``max_backoff_s``). Records in neither place
("unsaved") are capped at ``max_unsaved``: past that, a new record is dropped, counted
(``dropped``, ``on_dropped``) and logged at most once per ``drop_log_interval_s``.

At start the segments of processes that died (and a spill file of a version before the WAL)
are replayed; a replay skips the ids the database already has, so a crash during it writes
nothing twice. ``aclose()`` writes what it can and leaves the rest in the WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.cost.spend_drops import Drops
from chatgate.cost.spend_refused import refused_for_data, set_aside, write_apart
from chatgate.cost.spend_sql import SpendWriter
from chatgate.cost.spend_unlogged import Unlogged
from chatgate.cost.spend_wal import SpendWal, read_segment
from chatgate.cost.usage import UsageRecord
from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate

__all__ = ["SqlSink"]

log = logging.getLogger("chatgate.spend")


class SqlSink:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        wal_dir: str | Path | None = None,
        spill_path: str | Path = "chatgate-spend-spill.jsonl",
        batch_size: int = 500,
        interval_s: float = 0.5,
        wal_window_s: float = 0.02,
        max_buffer: int = 20_000,
        max_unsaved: int = 200_000,
        unsaved_ready_limit: int = 1_000,
        max_backoff_s: float = 10.0,
        drop_log_interval_s: float = 60.0,
        on_pending: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        """``wal_dir``: the write-ahead directory (default: ``chatgate-spend-wal`` beside
        ``spill_path``, the file versions before the WAL spilled to, replayed if found)."""
        self.spill_path = Path(spill_path)
        self.wal = SpendWal(wal_dir or self.spill_path.parent / "chatgate-spend-wal")
        self.writer = SpendWriter(engine)
        self.engine = engine
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.wal_window_s = wal_window_s
        self.max_buffer = max_buffer
        self.max_unsaved = max_unsaved
        self.unsaved_ready_limit = unsaved_ready_limit
        self.max_backoff_s = max_backoff_s
        self._on_pending = on_pending
        self.written = 0  # rows this sink added to the database
        self._drops = Drops(drop_log_interval_s, on_dropped)
        self.refused = 0  # records the database refused, set aside (spend_refused)
        # Records not in the database yet, oldest first; each has a sequence number: the
        # first's is _head, the last's _emitted. Every seq <= _logged is in the WAL, every
        # seq <= _committed in the database.
        self._queue: deque[UsageRecord] = deque()
        self._unlogged = Unlogged()  # those not in the WAL yet (spend_unlogged)
        self._head = 1
        self._emitted = self._logged = self._committed = 0
        self._evicted = False  # records left memory for the WAL: read them back first
        self._uncertain = False  # a write failed: the next one skips ids already stored
        self._db_failing = False
        self._adopted: dict[Path, int] = {}  # segments of dead processes: their line counts
        self._wake = asyncio.Event()
        self._log_wake = asyncio.Event()  # set by emit when the WAL loop is idle
        self._log_idle = False
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._wal_unopened = False
        self._last_pending = -1

    @classmethod
    async def open(cls, url: str, **options: Any) -> SqlSink:
        """Connect, migrate, start the writers (replaying what an earlier run left)."""
        engine = create_engine(url)
        await migrate(engine)
        sink = cls(engine, **options)
        sink.start()
        return sink

    def start(self) -> None:
        if self._tasks:
            return
        self._open_wal()
        self._report_pending()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._log_loop())]

    def _open_wal(self) -> None:
        """Take over what dead processes left; on a failure (a full or read-only disk) the
        sink runs on, trying again before each database round."""
        try:
            adopted = self.wal.open(legacy=[self.spill_path, _aside(self.spill_path)])
            self._adopted |= {path: path.read_bytes().count(b"\n") for path in adopted}
        except OSError as exc:
            if not self._wal_unopened:
                log.error("spend log: cannot open the WAL in %s (%s)", self.wal.directory, exc)
            self._wal_unopened = True
            return
        self._wal_unopened = False
        if adopted:
            log.warning("spend log: replaying %d records left by an earlier run", self._backlog)

    # -- counts -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records taken but not in the database yet (in memory or only in the WAL)."""
        return self._emitted - self._committed + self._backlog

    @property
    def _backlog(self) -> int:
        return sum(self._adopted.values())

    @property
    def dropped(self) -> int:
        """Records lost past ``max_unsaved`` (``spend_drops``)."""
        return self._drops.count

    @property
    def held(self) -> int:
        """Records held in memory (while the database is down: about ``max_buffer`` at most,
        plus the unsaved ones)."""
        return len(self._queue)

    @property
    def unsaved(self) -> int:
        """Records in memory only: neither in the WAL nor in the database."""
        return self._emitted - max(self._logged, self._head - 1)

    def check(self) -> None:
        """A readiness check: raise while unsaved records pile up past the limit."""
        if self.unsaved > self.unsaved_ready_limit:
            raise RuntimeError(
                f"{self.unsaved} spend records held in memory only (limit "
                f"{self.unsaved_ready_limit}): neither the WAL nor the database takes writes"
            )

    # -- the request side -------------------------------------------------------------------

    def emit(self, record: UsageRecord) -> None:
        if self._emitted - max(self._logged, self._head - 1) >= self.max_unsaved:  # unsaved
            self._drops.add(self.unsaved, self.wal.directory)
            return
        self._emitted += 1
        if record.record_id is None:
            record.record_id = f"{self.wal.owner}-{self._emitted:x}"
        self._queue.append(record)
        self._unlogged.records.append(record)
        if self._log_idle:  # the WAL loop sleeps until there is something to write
            self._log_idle = False
            self._log_wake.set()
        if len(self._queue) % self.batch_size == 0:
            self._wake.set()

    # -- the WAL loop -----------------------------------------------------------------------

    async def _log_loop(self) -> None:
        backoff, retry_at = 0.1, 0.0
        while True:
            # Idle, it waits for a record instead of waking every window: a timer firing 50
            # times a second cost the event loop whether or not requests came.
            if not retry_at and self._emitted <= max(self._logged, self._head - 1):
                self._report_pending()
                self._log_idle = True
                self._log_wake.clear()
                await self._log_wake.wait()
            await asyncio.sleep(self.wal_window_s)
            self._report_pending()
            if time.monotonic() < retry_at:
                continue
            try:
                logged = await self._log_once()
            except Exception:  # the WAL loop must outlive anything a write throws
                log.exception("spend log: WAL write failed; records kept in memory")
                logged = False
            if logged:
                backoff, retry_at = 0.1, 0.0
            else:
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _log_once(self) -> bool:
        last = self._emitted
        if not await self._unlogged.write(self.wal, last, self._head):
            return False
        self._logged = max(self._logged, last)
        return True

    def _report_pending(self) -> None:
        pending = self.pending
        if pending != self._last_pending and self._on_pending is not None:
            self._on_pending(pending)
        self._last_pending = pending

    # -- the database loop ------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.interval_s
        retry_at = 0.0
        while not self._closing:
            wait = max(retry_at - time.monotonic(), 0.0) or self.interval_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # not wait_for: no task per wait
                    await self._wake.wait()
            self._wake.clear()
            if time.monotonic() < retry_at:  # backing off: only keep memory bounded
                if not self._lock.locked():
                    self._evict()
                continue
            try:
                ok = await self.flush()
            except Exception:  # the writer must outlive anything a write throws
                log.exception("spend log: flush failed; retrying")
                ok = False
            backoff = self.interval_s if ok else min(backoff * 2, self.max_backoff_s)
            retry_at = 0.0 if ok else time.monotonic() + backoff
            self._report_pending()  # (an idle WAL loop does not)

    async def flush(self) -> bool:
        """Write what is waiting (replays first); False if the database failed (the records
        are kept, nothing is lost)."""
        async with self._lock:
            ok = await self._flush()
            if not ok:
                self._evict()
            return ok

    async def _flush(self) -> bool:
        if self._wal_unopened:
            self._open_wal()
        if self._adopted and not await self._replay_adopted():
            return False
        if self._evicted and not await self._catch_up():
            return False
        queue = self._queue
        while queue:
            batch = list(itertools.islice(queue, self.batch_size))
            if not await self._write(batch, dedupe=self._uncertain):
                return False
            self._uncertain = False
            for _ in batch:
                queue.popleft()
            self._head += len(batch)
            self._committed = self._head - 1
            self.wal.release(self._committed)
            if len(queue) > self.max_buffer:  # slower than the traffic, not down: memory
                self._evict()  # stays bounded all the same; _catch_up reads them back first
                if self._evicted:
                    return True
        return True

    async def _write(self, batch: Sequence[UsageRecord], *, dedupe: bool) -> bool:
        try:
            self.written += await self.writer.write(batch, dedupe=dedupe)
        except Exception as exc:  # whatever the driver raises, the batch is kept, never lost
            if refused_for_data(exc):  # perhaps one record's data: find it, never block the rest
                return await self._write_apart(batch, exc)
            return self._failed(exc)
        if self._db_failing:
            log.warning("spend log: database writes work again")
            self._db_failing = False
        return True

    async def _write_apart(self, batch: Sequence[UsageRecord], exc: Exception) -> bool:
        """A batch refused for its data (spend_refused): the rest is written, the refused
        records set aside — once the database took another record of the batch: one that
        refuses them all (a trigger, a read-only role) is down, not offended by a record."""
        apart = await write_apart(self.writer, batch, exc)
        self.written += apart.written
        if apart.outage is not None or (apart.refused and not apart.written):
            self._uncertain = True  # parts may have landed
            return self._failed(apart.outage or apart.refused[0][1])
        for record, why in apart.refused:
            if not await set_aside(self.wal.directory, self.wal.owner, record, why):
                self._uncertain = True
                return False
            self.refused += 1
        return True

    def _failed(self, exc: Exception) -> bool:
        if not self._db_failing:
            log.warning(
                "spend log: database write failed (%s); records kept, retrying",
                type(exc).__name__,
            )
        self._db_failing = self._uncertain = True
        return False

    def _evict(self) -> None:
        """Past ``max_buffer``, let go of the records the WAL holds; read back later."""
        durable = min(self._logged - self._head + 1, len(self._queue))
        if len(self._queue) <= self.max_buffer or durable <= 0:
            return
        for _ in range(durable):
            self._queue.popleft()
        self._head += durable
        self._evicted = True

    async def _replay_file(self, path: Path) -> bool:
        records = await asyncio.to_thread(read_segment, path)
        for at in range(0, len(records), self.batch_size):
            if not await self._write(records[at : at + self.batch_size], dedupe=True):
                return False
            self._evict()  # what arrives while a slow database catches up waits in the WAL too
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return True

    async def _replay_adopted(self) -> bool:
        for path, count in list(self._adopted.items()):
            if not await self._replay_file(path):
                return False
            del self._adopted[path]
            log.info("spend log: replayed %d records from %s", count, path.name)
        self.wal.forget_adopted()
        return True

    async def _catch_up(self) -> bool:
        """Write the records that left memory for the WAL: every closed segment, read back.
        Records evicted meanwhile (``_evict`` during the replay) make the next flush do it
        again."""
        self._evicted = False
        upto = self._committed
        for segment in await asyncio.to_thread(self.wal.rotate):
            if not await self._replay_file(segment.path):
                self._evicted = True  # the rest is still only in the WAL
                return False
            upto = max(upto, segment.last_seq)
        self.wal.release(upto)
        while self._queue and self._head <= upto:
            self._queue.popleft()
            self._head += 1
        self._head = max(self._head, upto + 1)
        self._committed = max(self._committed, upto)
        return True

    async def aclose(self) -> None:
        """Stop, write what the database takes, and leave the rest in the WAL for the next
        start; dispose of the engine."""
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            if task is not self._tasks[0]:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush()
        if self.pending:
            await self._log_once()
            left = self.unsaved
            if left:
                self._drops.count += left
                log.error("spend log: %d records lost at shutdown: the WAL is not writable", left)
        self.wal.close(empty=self.pending == 0)
        self._report_pending()
        await self.engine.dispose()


def _aside(spill: Path) -> Path:
    """Where versions before the WAL moved their spill file while replaying it."""
    return spill.with_name(spill.name + ".replaying")
