"""In-process LRU cache bounded in bytes, with a time to live per entry.

The bound counts each entry's key and value bytes plus a fixed overhead, so ``max_bytes`` is
close to the memory the entries hold. Reads and writes take a lock: the sync API's loop
thread and the caller's loop may use one cache at the same time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["ENTRY_OVERHEAD", "MemoryBackend"]

ENTRY_OVERHEAD = 120  # bytes: the dict slot, the tuple and the two object headers, roughly


class MemoryBackend:
    """An in-process LRU cache backend bounded by ``max_bytes``; entries expire by TTL."""

    def __init__(
        self, max_bytes: int = 64 * 1024 * 1024, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("MemoryBackend max_bytes must be a positive number of bytes")
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _cost(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self._bytes -= self._cost(key, value)

    def get_now(self, key: str) -> bytes | None:
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            value, expires = item
            if expires is not None and expires <= self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def set_now(self, key: str, value: bytes, ttl: float | None) -> None:
        cost = self._cost(key, value)
        with self._lock:
            if key in self._entries:
                self._drop(key)
            if cost > self.max_bytes:
                return  # larger than the whole cache: never stored
            expires = None if ttl is None else self._clock() + ttl
            self._entries[key] = (value, expires)
            self._bytes += cost
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.set_now(key, value, ttl)

    async def delete(self, key: str) -> None:
        with self._lock:
            if key in self._entries:
                self._drop(key)

    async def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    async def aclose(self) -> None:
        pass
