"""A conversation's tier floor in Redis, shared by every worker and replica of a Router whose
state is in Redis: a session escalated on one is never served lower on another.

One key per session, ``chatgate:tier:{<namespace>}:<model>:<hash of the session>`` (the
session text is a user id or a client's header: only its hash is stored), holding the
highest tier reached, expiring ``ttl_s`` after the last answer. Raising it is one Lua script
(``SET`` only if higher), so two processes raising at once keep the higher.

Redis down. The floor fails open to this process's memory (``SessionTiers``), which also
records every tier served here, so a conversation that stays on this process keeps its floor
through the outage. Any other Redis error (a key someone overwrote with another type) is
logged and answered from memory too: a floor is a cost preference, never a reason to fail a
request. Each call answered from memory is counted (``fallbacks``, and the
``on_fallback`` listener: the gateway's ``chatgate_shared_state_fallbacks``); the outage is
logged when it begins and ends; Redis is tried again every ``retry_s``, the calls between
do not wait on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from chatgate.tiering.session import SessionTiers

__all__ = ["RAISE_FLOOR", "SharedSessionTiers"]

log = logging.getLogger("chatgate.tiering")

T = TypeVar("T")

# KEYS[1] the session's key; ARGV[1] the tier served, ARGV[2] the ttl in ms. Returns the floor.
RAISE_FLOOR = """
local tier = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tier > current then
  redis.call('SET', KEYS[1], tier, 'PX', ARGV[2])
  return tier
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return current
"""


class SharedSessionTiers:
    """``await afloor(key)`` and ``await areached(key, tier)``, as ``SessionTiers``'s."""

    def __init__(
        self,
        url: str,
        *,
        model: str,
        namespace: str,
        local: SessionTiers,
        ttl_s: float,
        retry_s: float = 1.0,
        on_fallback: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        **client_options: Any,
    ) -> None:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError, ReadOnlyError, RedisError, TimeoutError

        self.url = url
        self.local = local
        self.fallbacks = 0
        self._prefix = f"chatgate:tier:{{{namespace}}}:{model}:"
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._retry_s = retry_s
        self._on_fallback = on_fallback
        self._clock = clock
        self._down_until: float | None = None
        self._unavailable = (ConnectionError, TimeoutError, ReadOnlyError, OSError)
        self._redis_error = RedisError
        self._options = {  # RedisState's: never hold a request for seconds on a dead Redis
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
            "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
            **client_options,
        }
        # per event loop (redis.asyncio binds connections to one): the client and the script
        self._conns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    def key(self, session: str) -> str:
        return self._prefix + hashlib.blake2b(session.encode(), digest_size=16).hexdigest()

    async def afloor(self, session: str | None) -> int:
        if session is None:
            return 0
        local = self.local.floor(session)
        shared = await self._call(lambda conn: conn[0].get(self.key(session)))
        return max(local, int(shared)) if shared is not None else local

    async def areached(self, session: str | None, tier: int) -> None:
        if session is None:
            return
        self.local.reached(session, tier)
        await self._call(lambda conn: conn[1]([self.key(session)], [tier, self._ttl_ms]))

    async def aclose(self) -> None:
        """Close this event loop's connection."""
        conn = self._conns.pop(asyncio.get_running_loop(), None)
        if conn is not None:
            await conn[0].aclose()

    def _conn(self) -> tuple[Any, Any]:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        conn = self._conns.get(loop)
        if conn is None:
            client = redis.asyncio.Redis.from_url(self.url, **self._options)
            conn = self._conns[loop] = (client, client.register_script(RAISE_FLOOR))
        return conn

    async def _call(self, remote: Callable[[tuple[Any, Any]], Awaitable[T]]) -> T | None:
        """``remote`` on Redis; None (the caller uses memory) while Redis is unavailable."""
        now = self._clock()
        if self._down_until is not None and now < self._down_until:
            self._fell_back()
            return None
        try:
            result = await remote(self._conn())
        except self._unavailable as exc:
            if self._down_until is None:
                log.warning(
                    "tier sessions in Redis unavailable (%s); each process keeps its own "
                    "sessions' floors until it is back",
                    type(exc).__name__,
                )
            self._down_until = now + self._retry_s
            self._fell_back()
            return None
        except self._redis_error as exc:  # Redis answered with an error (a key of another type)
            log.warning("tier session floor in Redis failed (%s); this process's used", exc)
            self._fell_back()
            return None
        if self._down_until is not None:
            self._down_until = None
            log.warning("tier sessions in Redis are back; floors are shared again")
        return result

    def _fell_back(self) -> None:
        self.fallbacks += 1
        if self._on_fallback is not None:
            self._on_fallback()
