"""Which slots a RedisState holds, under which lease, the heartbeat that keeps those leases
alive, and what an outage left to settle.

A slot taken in Redis is held under the lease it was taken with, one taken in the fallback
MemoryState under ``LOCAL``; while any is held in Redis, a heartbeat extends their leases every
``lease_s / 3``. While Redis is unavailable a release cannot reach it. One that
was never sent is kept (``unsent``) and replayed when Redis is back: exactly once, so the slot
stops counting then. One whose reply was lost may or may not have run, so replaying it could
free someone else's slot; its lease becomes an orphan instead, ended once no slot is held under
it (as is the lease in use when an outage began: a reserve whose reply was lost may hold a slot
under it that nobody will release).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["LOCAL", "Holds", "Unsent", "new_lease"]

log = logging.getLogger("chatgate.router")

LOCAL = ""


def new_lease() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True, slots=True)
class Unsent:
    id: str
    lease: str
    token_correction: int


class Holds:
    """``extend(leases)`` extends leases in Redis; ``unavailable``: its errors that mean
    Redis is unavailable (the calls themselves handle the outage)."""

    def __init__(
        self,
        extend: Callable[[list[str]], Awaitable[None]],
        every_s: float,
        unavailable: tuple[type[BaseException], ...],
    ) -> None:
        self._by_id: dict[str, dict[str, int]] = {}  # id -> lease (or LOCAL) -> slots held
        self.orphans: set[str] = set()
        self.unsent: list[Unsent] = []
        self._extend = extend
        self._every_s = every_s
        self._unavailable = unavailable
        self._beat: asyncio.Task[None] | None = None

    def take(self, id: str, lease: str) -> None:
        held = self._by_id.setdefault(id, {})
        held[lease] = held.get(lease, 0) + 1

    def give_back(self, id: str, current: str) -> str:
        """Forget one slot of ``id``: the lease to release it under (LOCAL first)."""
        held = self._by_id.get(id, {})
        lease = LOCAL if LOCAL in held else next(iter(held), current)
        if lease in held:
            held[lease] -= 1
            if not held[lease]:
                del held[lease]
                if not held:
                    self._by_id.pop(id, None)
        return lease

    def leases(self) -> list[str]:
        """The Redis leases under which slots are held."""
        return sorted({lease for held in self._by_id.values() for lease in held} - {LOCAL})

    @property
    def any_local(self) -> bool:
        return any(LOCAL in held for held in self._by_id.values())

    def to_end(self) -> set[str]:
        """Orphans under which no slot is held any more."""
        return self.orphans - set(self.leases())

    def keep_alive(self) -> None:
        """Keep a heartbeat running while slots are held in Redis."""
        if self._beat is None or self._beat.done():
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while leases := self.leases():
            await asyncio.sleep(self._every_s)
            try:
                await self._extend(leases)
            except self._unavailable as exc:
                log.debug("shared router state: lease not extended: %s", exc)

    def stop_beat(self) -> asyncio.Task[None] | None:
        """Stop the heartbeat (from any thread); returns its task."""
        beat, self._beat = self._beat, None
        if beat is not None and not beat.done() and not beat.get_loop().is_closed():
            beat.get_loop().call_soon_threadsafe(beat.cancel)
        return beat
