"""A conversation's tier floor: once a session reached a tier it never drops below it, so a
conversation does not bounce between models mid-way. In-process, bounded and expiring; shared
through Redis by ``SharedSessionTiers`` (shared_session.py) when the Router's state is."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

__all__ = ["SessionFloors", "SessionTiers"]


class SessionFloors(Protocol):
    """What a tiered model asks of its sessions' memory, in process or shared."""

    async def afloor(self, key: str | None) -> int: ...

    async def areached(self, key: str | None, tier: int) -> None: ...


class SessionTiers:
    """``floor(key)``: the lowest tier the session may use now (0 when unknown or expired);
    ``reached(key, tier)``: the session was served at ``tier``. Past ``max_sessions`` the
    least recently seen session is forgotten."""

    def __init__(
        self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (tier, expiry)

    def __len__(self) -> int:
        return len(self._seen)

    def floor(self, key: str | None) -> int:
        if key is None:
            return 0
        entry = self._seen.get(key)
        if entry is None:
            return 0
        if entry[1] <= self._clock():
            del self._seen[key]
            return 0
        return entry[0]

    def reached(self, key: str | None, tier: int) -> None:
        if key is None:
            return
        tier = max(tier, self.floor(key))
        self._seen[key] = (tier, self._clock() + self._ttl)
        self._seen.move_to_end(key)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    async def afloor(self, key: str | None) -> int:
        return self.floor(key)

    async def areached(self, key: str | None, tier: int) -> None:
        self.reached(key, tier)
