"""Response caching: exact and semantic, memory / SQLite / Redis, streaming-aware,
single-flight. See docs/caching.md.

    cache = Cache("sqlite", path="chatgate-cache.db")
    response = await cache.get_or_call(request, "smart", call)      # router / gateway
    chatgate.configure_cache(cache)                                   # the library's default

The semantic cache (numpy, an embedding model) is imported from ``chatgate.cache.semantic``.
"""

from __future__ import annotations

from chatgate.cache.base import CacheBackend, CacheBackendError
from chatgate.cache.default import configure_cache, default_cache
from chatgate.cache.keys import cache_key
from chatgate.cache.layer import Cache, CacheStats, cache_status
from chatgate.cache.memory import MemoryBackend
from chatgate.cache.policy import CacheControl, CachePolicy, control_from_headers
from chatgate.cache.redis import RedisBackend
from chatgate.cache.sqlite import SQLiteBackend

__all__ = [
    "Cache",
    "CacheBackend",
    "CacheBackendError",
    "CacheControl",
    "CachePolicy",
    "CacheStats",
    "MemoryBackend",
    "RedisBackend",
    "SQLiteBackend",
    "cache_key",
    "cache_status",
    "configure_cache",
    "control_from_headers",
    "default_cache",
]
