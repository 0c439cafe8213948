"""What a cache backend is: bytes by key, each with its own time to live."""

from __future__ import annotations

from typing import Protocol

__all__ = ["CacheBackend", "CacheBackendError"]


class CacheBackendError(Exception):
    """The backend could not be read or written (Redis down, disk full...). The cache layer
    treats it as a miss, or skips the store, and logs it: a cache outage never fails a call."""


class CacheBackend(Protocol):
    """Stores opaque bytes. ``ttl`` is in seconds (None: no expiry); an expired entry is never
    returned. Backends may be used from more than one event loop (the sync API runs on its own
    loop), so they hold no loop-bound state across calls, or keep it per loop. Their own
    failures surface as CacheBackendError."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def clear(self) -> None:
        """Remove every entry this backend holds (for its prefix or file)."""
        ...

    async def aclose(self) -> None: ...
