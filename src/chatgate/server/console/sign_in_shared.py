"""The sign-in limit's per-address count shared by every worker and instance through the
gateway's Redis (``router_settings.redis_url``), so that N workers do not give an address N
times the tries. Each step is one Lua script: atomic, so tries sent at once to different
workers cannot outrun the count.

Per address three keys, each expiring on its own: ``f`` the failures in the current window
(``INCR``, expiring ``window_s`` after the first), ``l`` the lock (its TTL is the lockout),
``n`` the lockouts in a row (forgotten after ``max_lockout_s`` without a failure: the backoff
starts over). The per-process limiter (sign_in_limit.py) still runs beside it: it keeps the
global limit and the known addresses, and it counts the address only while Redis is
unavailable (a sign-in must not wait on it, nor fail because of it).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

from chatgate.router.redis_state import RedisState
from chatgate.server.console.sign_in_limit import (
    MAX_LOCKOUT_S,
    PER_ADDRESS,
    WINDOW_S,
    SignInLimiter,
    limited,
    limiter_for,
)
from chatgate.server.services import Services

__all__ = ["SignIns", "Try", "sign_ins_for"]

log = logging.getLogger("chatgate.server")

# KEYS: failures, lock, lockouts. ARGV: per_address, window_ms, max_lockout_ms.
# Returns {failures, lock_ms}: failures 0 with the lock's remaining ms when refused; a
# negative lock_ms when this try locked the address.
_ATTEMPT = """
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {0, left} end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
if n < tonumber(ARGV[1]) then return {n, 0} end
local k = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
local lock = math.min(tonumber(ARGV[2]) * 2 ^ (k - 1), tonumber(ARGV[3]))
redis.call('SET', KEYS[2], '1', 'PX', math.floor(lock))
redis.call('DEL', KEYS[1])
return {n, -math.floor(lock)}
"""

# KEYS as above. ARGV: locked (1: this try set the lock), per_address, window_ms.
_WITHDRAW = """
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[2])
  redis.call('DECR', KEYS[3])
  redis.call('SET', KEYS[1], tonumber(ARGV[2]) - 1, 'PX', ARGV[3])
elseif tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Try:
    """One let-through try: when the local limiter counted it, and what Redis did."""

    at: float
    shared: bool = False  # counted in Redis
    locked: bool = False  # and it locked the address there


class SignIns:
    def __init__(
        self,
        memory: SignInLimiter,
        services: Services,
        *,
        per_address: int = PER_ADDRESS,
        window_s: float = WINDOW_S,
        max_lockout_s: float = MAX_LOCKOUT_S,
    ) -> None:
        self.memory = memory
        self._services = services
        self._per_address = per_address
        self._window_ms = max(1, round(window_s * 1000))
        self._max_lockout_ms = max(1, round(max_lockout_s * 1000))

    def _shared(self) -> RedisState | None:
        state = self._services.key_limits
        # tried even while the router's calls fall back (they probe on their own schedule):
        # a sign-in is rare, and Redis refuses fast when it is down
        return state if isinstance(state, RedisState) else None

    @staticmethod
    def _keys(state: RedisState, address: str) -> list[str]:
        prefix = f"chatgate:signin:{{{state.namespace}}}:{address}:"
        return [prefix + "f", prefix + "l", prefix + "n"]

    async def attempt(self, address: str) -> Try:
        """Raise the 429 when ``address`` may not try a key now; else count the try."""
        self.memory.check(address)
        state = self._shared()
        if state is None:
            return Try(self.memory.attempt(address))
        args = [self._per_address, self._window_ms, self._max_lockout_ms]
        try:
            script = state.redis_client().register_script(_ATTEMPT)
            failures, lock_ms = await script(self._keys(state, address), args)
        except state.unavailable as exc:
            log.warning("console sign-in: Redis unavailable, counting in this process: %s", exc)
            return Try(self.memory.attempt(address))
        if not failures:
            raise limited(int(lock_ms) / 1000.0)
        at = self.memory.attempt(address, per_address=False)
        return Try(at, shared=True, locked=int(lock_ms) < 0)

    async def withdraw(self, address: str, tried: Try) -> None:
        """The try was no guess (the key could not be looked up): not a failure."""
        self.memory.withdraw(address, tried.at)
        state = self._shared()
        if state is None or not tried.shared:
            return
        args = ["1" if tried.locked else "0", self._per_address, self._window_ms]
        try:
            script = state.redis_client().register_script(_WITHDRAW)
            await script(self._keys(state, address), args)
        except state.unavailable as exc:
            log.warning("console sign-in: Redis unavailable, a try stays counted: %s", exc)

    async def succeeded(self, address: str, tried: Try) -> None:
        """A right key: the address starts over, everywhere."""
        self.memory.succeeded(address, tried.at)
        state = self._shared()
        if state is None:
            return
        try:
            await state.redis_client().delete(*self._keys(state, address))
        except state.unavailable as exc:
            log.warning("console sign-in: Redis unavailable, the count stays: %s", exc)


# One per gateway, like the per-process limiter it wraps.
_BY_SERVICES: weakref.WeakKeyDictionary[Services, SignIns] = weakref.WeakKeyDictionary()


def sign_ins_for(services: Services) -> SignIns:
    found = _BY_SERVICES.get(services)
    if found is None:
        found = _BY_SERVICES[services] = SignIns(limiter_for(services), services)
    return found
