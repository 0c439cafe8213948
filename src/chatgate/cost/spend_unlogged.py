"""The spend log's records not yet in its write-ahead file, and the group write that puts
them there (cost/usage_sql.py's WAL loop; cost/spend_wal.py writes the file).

A list of their own, beside the in-memory queue that holds every record until the database
has it: finding them in that queue meant stepping past every record already logged, at each
write. A write that fails keeps them, first in line for the next one.
"""

from __future__ import annotations

import asyncio
import logging

from chatgate.cost.spend_wal import SpendWal
from chatgate.cost.usage import UsageRecord

__all__ = ["Unlogged"]

log = logging.getLogger("chatgate.spend")


class Unlogged:
    """``records`` in order, the first with sequence number ``first``."""

    __slots__ = ("failing", "first", "records")

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.first = 1
        self.failing = False  # the last write failed (logged once, and once when it works)

    async def write(self, wal: SpendWal, last: int, head: int) -> bool:
        """Write every record up to sequence number ``last`` but those before ``head`` (the
        database has them already) and sync them; False if the disk refused (kept)."""
        batch, first = self.records, self.first
        self.records, self.first = [], last + 1
        del batch[: max(head - first, 0)]
        if not batch:
            return True
        try:
            await asyncio.to_thread(wal.write, batch, last)
        except BaseException as exc:
            self.records[:0] = batch  # tried again first; what came meanwhile follows
            self.first = last + 1 - len(batch)
            if not isinstance(exc, OSError):
                raise
            if not self.failing:
                log.error("spend log: WAL write failed (%s); records kept in memory", exc)
                self.failing = True
            return False
        if self.failing:
            log.warning("spend log: WAL writes work again")
            self.failing = False
        return True
