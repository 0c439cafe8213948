"""A semantic index shared through Redis: a log per scope, mirrored into local numpy arrays.

Each scope is a Redis stream of rows (exact key, vector bytes, expiry). Every instance keeps
a local MemoryVectorStore mirror and, before each search, reads only the rows added since its
last read (``XRANGE scope (last-id +``: one round trip that is empty most of the time), so a
search costs one small Redis call plus a local matrix-vector product. Streams are capped at
``max_entries_per_scope`` rows (approximate ``MAXLEN``) and expire with their newest answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from chatgate.cache.redis import RedisBackend, translated_errors
from chatgate.cache.semantic.minilm import Array
from chatgate.cache.semantic.store import MemoryVectorStore

__all__ = ["RedisVectorStore"]


class RedisVectorStore:
    def __init__(
        self,
        redis: RedisBackend | str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "chatgate:semantic:",
        max_entries_per_scope: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis if isinstance(redis, RedisBackend) else RedisBackend(redis)
        self.prefix = prefix
        self.max_entries_per_scope = max_entries_per_scope
        self._clock = clock
        self._mirror = MemoryVectorStore(max_entries=10 * max_entries_per_scope, clock=clock)
        self._seen: dict[str, bytes] = {}  # scope -> last stream id read
        self._lock = threading.Lock()

    async def _sync(self, scope: str) -> None:
        client: Any = self._redis.client()
        with self._lock:
            last = self._seen.get(scope, b"0-0")
        with translated_errors():
            rows = await client.xrange(self.prefix + scope, min=b"(" + last, max="+")
        if not rows:
            return
        with self._lock:
            if self._seen.get(scope, b"0-0") != last:
                return  # another task on another loop read them meanwhile
            for _, fields in rows:
                vector = np.frombuffer(fields[b"v"], dtype=np.float32)
                self._mirror.add_now(scope, vector, fields[b"k"].decode(), float(fields[b"e"]))
            self._seen[scope] = rows[-1][0]

    async def search(self, scope: str, vector: Array, threshold: float) -> tuple[str, float] | None:
        await self._sync(scope)
        return self._mirror.search_now(scope, vector, threshold)

    async def add(self, scope: str, vector: Array, key: str, ttl: float | None) -> None:
        client: Any = self._redis.client()
        expires_at = self._mirror.expiry(ttl)
        fields = {"k": key, "v": np.asarray(vector, dtype=np.float32).tobytes(), "e": expires_at}
        name = self.prefix + scope
        with translated_errors():
            async with client.pipeline(transaction=False) as pipe:
                pipe.xadd(name, fields, maxlen=self.max_entries_per_scope, approximate=True)
                if ttl is not None:
                    pipe.expire(name, max(int(ttl), 1), gt=True)
                    pipe.expire(name, max(int(ttl), 1), nx=True)
                else:
                    pipe.persist(name)
                await pipe.execute()
        await self._sync(scope)  # our own row, and anything added before it

    async def clear(self) -> None:
        client: Any = self._redis.client()
        with translated_errors():
            keys = [k async for k in client.scan_iter(match=self.prefix + "*", count=500)]
            if keys:
                await client.unlink(*keys)
        with self._lock:
            self._seen.clear()
        await self._mirror.clear()

    async def aclose(self) -> None:
        await self._redis.aclose()
