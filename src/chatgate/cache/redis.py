"""A cache in Redis, shared by every gateway instance: ``SET key value PX ttl`` / ``GET``.

redis-py's asyncio client binds its connections to the event loop that made them, so there is
one client per loop (the sync API runs on its own loop), all on one connection pool setting.
Keys are ``<prefix><sha256>``; ``clear()`` deletes only keys under the prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from chatgate.cache.base import CacheBackendError

__all__ = ["RedisBackend"]


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    from redis.exceptions import RedisError

    try:
        yield
    except (RedisError, OSError) as exc:
        raise CacheBackendError(f"redis: {type(exc).__name__}: {exc}") from exc


class RedisBackend:
    """A cache backend in Redis, shared by every process that uses the same ``url`` and
    ``prefix``; entries expire by Redis TTL. Needs ``chatgate[redis]``."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "chatgate:cache:",
        **client_options: Any,
    ) -> None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the install
            raise ImportError(
                "the Redis cache needs the redis package: pip install 'chatgate[redis]'"
            ) from None
        self.url = url
        self.prefix = prefix
        self._options = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0, **client_options}
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def client(self) -> Any:
        """This loop's redis.asyncio.Redis client (the semantic store shares it)."""
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = redis.asyncio.Redis.from_url(self.url, **self._options)
        return client

    async def get(self, key: str) -> bytes | None:
        with translated_errors():
            value: bytes | None = await self.client().get(self.prefix + key)
        return value

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        px = None if ttl is None else max(int(ttl * 1000), 1)
        with translated_errors():
            await self.client().set(self.prefix + key, value, px=px)

    async def delete(self, key: str) -> None:
        with translated_errors():
            await self.client().delete(self.prefix + key)

    async def clear(self) -> None:
        client = self.client()
        batch: list[bytes] = []
        with translated_errors():
            async for key in client.scan_iter(match=self.prefix + "*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await client.unlink(*batch)
                    batch = []
            if batch:
                await client.unlink(*batch)

    async def aclose(self) -> None:
        """Close this loop's client (other loops' clients close with their loops)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
