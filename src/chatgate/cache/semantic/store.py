"""An in-memory vector index per scope: numpy rows, searched by one matrix-vector product.

Rows are unit vectors, so the product is the cosine similarity. Each row carries the exact
cache key of the request that made it and an expiry time. The index is bounded: past
``max_entries`` rows in all, the least recently used scope is dropped whole (a single scope
over the bound keeps its newest half).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from chatgate.cache.semantic.minilm import Array, single_blas_thread

__all__ = ["MemoryVectorStore", "ScopeIndex"]


class ScopeIndex:
    """The rows of one scope, in arrays that grow by doubling."""

    __slots__ = ("expires", "keys", "n", "vectors")

    def __init__(self, dim: int) -> None:
        self.vectors: Array = np.zeros((16, dim), dtype=np.float32)
        self.expires = np.zeros(16, dtype=np.float64)  # 0: never
        self.keys: list[str] = []
        self.n = 0

    def add(self, vector: Array, key: str, expires_at: float) -> None:
        if self.n == len(self.vectors):
            self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors)])
            self.expires = np.concatenate([self.expires, np.zeros_like(self.expires)])
        self.vectors[self.n] = vector
        self.expires[self.n] = expires_at
        self.keys.append(key)
        self.n += 1

    def keep_newest(self, count: int) -> int:
        """Drop all but the newest ``count`` rows; returns how many were dropped."""
        dropped = max(self.n - count, 0)
        if dropped:
            self.vectors = self.vectors[dropped : self.n].copy()
            self.expires = self.expires[dropped : self.n].copy()
            self.keys = self.keys[dropped:]
            self.n -= dropped
        return dropped

    def best(self, vector: Array, now: float) -> tuple[str, float] | None:
        if self.n == 0:
            return None
        with single_blas_thread():
            scores = self.vectors[: self.n] @ vector
        expires = self.expires[: self.n]
        scores[(expires != 0) & (expires <= now)] = -2.0
        i = int(np.argmax(scores))
        return self.keys[i], float(scores[i])


class MemoryVectorStore:
    def __init__(
        self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._scopes: OrderedDict[str, ScopeIndex] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def search_now(self, scope: str, vector: Array, threshold: float) -> tuple[str, float] | None:
        with self._lock:
            index = self._scopes.get(scope)
            if index is None:
                return None
            self._scopes.move_to_end(scope)
            found = index.best(vector, self._clock())
        if found is None or found[1] < threshold:
            return None
        return found

    def add_now(self, scope: str, vector: Array, key: str, expires_at: float) -> None:
        with self._lock:
            index = self._scopes.get(scope)
            if index is None:
                index = self._scopes[scope] = ScopeIndex(len(vector))
            self._scopes.move_to_end(scope)
            index.add(vector, key, expires_at)
            self._count += 1
            while self._count > self.max_entries and len(self._scopes) > 1:
                _, dropped = self._scopes.popitem(last=False)
                self._count -= dropped.n
            if self._count > self.max_entries:  # one scope alone is over: keep its newest half
                self._count -= index.keep_newest(self.max_entries // 2)

    def expiry(self, ttl: float | None) -> float:
        return 0.0 if ttl is None else self._clock() + ttl

    async def search(self, scope: str, vector: Array, threshold: float) -> tuple[str, float] | None:
        return self.search_now(scope, vector, threshold)

    async def add(self, scope: str, vector: Array, key: str, ttl: float | None) -> None:
        self.add_now(scope, vector, key, self.expiry(ttl))

    async def clear(self) -> None:
        with self._lock:
            self._scopes.clear()
            self._count = 0

    async def aclose(self) -> None:
        pass
