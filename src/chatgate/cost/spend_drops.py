"""Counting the spend records dropped past ``max_unsaved`` (``usage_sql``): each is counted
and reported to the caller's hook; the log says so at most once per interval, with the count
since its last line, so a flood of drops is one line a minute, never silence."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["Drops"]

log = logging.getLogger("chatgate.spend")


class Drops:
    def __init__(self, interval_s: float, on_dropped: Callable[[int], None] | None) -> None:
        self.interval_s = interval_s
        self.on_dropped = on_dropped
        self.count = 0
        self._unlogged = 0
        self._logged_at = 0.0

    def add(self, unsaved: int, wal_directory: Path) -> None:
        self.count += 1
        self._unlogged += 1
        if self.on_dropped is not None:
            self.on_dropped(1)
        now = time.monotonic()
        if now - self._logged_at >= self.interval_s:
            log.error(
                "spend log: dropped %d records (%d in all): %d held in memory, the cap; "
                "neither the WAL (%s) nor the database takes writes",
                self._unlogged,
                self.count,
                unsaved,
                wal_directory,
            )
            self._unlogged = 0
            self._logged_at = now
