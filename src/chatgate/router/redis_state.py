"""RouterState in Redis, shared by every worker and instance: ``RedisState(url)``.

Each method is one Lua script (``redis_scripts``), so it is one atomic step across processes,
and the semantics are MemoryState's, tested by the same tests.

Time. The router passes its own clock's ``now`` (monotonic), and monotonic clocks of two
processes have nothing in common. Each process therefore measures, with Redis's ``TIME``, the
offset from its clock to Redis's clock (once, then every minute) and stores every time in
Redis's clock: ``shared = now + offset``. All processes on all hosts share one clock without
relying on NTP between them; the error is half a round trip (well under a millisecond on a
LAN). The scripts keep working in the router's ``now``, so a test that drives the clock
drives the shared state exactly as it drives MemoryState.

Leases. A request in flight is counted under its process's lease, a field in the namespace's
lease hash holding the lease's end in Redis's own milliseconds (``TIME``, not the router's
clock: this is about processes being alive). Taking a slot extends the lease; while this
process holds slots a heartbeat extends it every ``lease_s / 3``. When a process dies its lease
ends ``lease_s`` (30 s) later and its in-flight counts and its half-open probe stop counting.

Expiry. Every key is under ``chatgate:rs:{<namespace>}:`` (the braces are a Redis Cluster hash
tag: a namespace's keys share one slot, as multi-key scripts need). A deployment's hash lives
``ttl_s`` (an hour) past its last write, longer while a cooldown runs; failure lists live one
failure window. An entry that expires is a healthy deployment with full buckets, as it would
be after an idle hour anyway.

Redis down. ``outage.py`` decides what a call gets while Redis is unavailable (refused,
timed out, read-only): ``failure="open"``, the answer of a MemoryState kept for the purpose;
``"closed"``, a refusal (``view``, ``reserve``) or nothing (``release``, ``record_*``). Every
``retry_s`` one call tries Redis again, under a fresh lease; when Redis answers, what the
outage left is settled (``leases.py``). A cancelled call changes the lease too: the old one
lives on only while slots taken under it are held. Other Redis errors (a script bug) raise.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from chatgate.config import SharedStateFailure
from chatgate.router import redis_scripts
from chatgate.router.leases import LOCAL, Holds, Unsent, new_lease
from chatgate.router.outage import Outage
from chatgate.router.state import EWMA_ALPHA, Health, Limits, MemoryState, Stats

__all__ = ["RedisState"]

log = logging.getLogger("chatgate.router")

T = TypeVar("T")
_RESYNC_S = 60.0


async def _nothing() -> None:
    pass


def _dropped() -> None:
    """What ``release`` and ``record_*`` do while Redis is unavailable and failure is closed."""


@dataclass(frozen=True, slots=True)
class _Conn:
    """One event loop's client and its scripts (redis.asyncio binds connections to a loop)."""

    client: Any
    view: Any
    reserve: Any
    release: Any
    success: Any
    failure: Any
    lease: Any


class RedisState:
    """``RedisState("redis://host:6379/0", namespace="prod")``; ``await aclose()`` at the end."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "default",
        lease_s: float = 30.0,
        ttl_s: float = 3600.0,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        failure: SharedStateFailure = "open",
        on_fallback: Callable[[], None] | None = None,
        on_refusal: Callable[[str], None] | None = None,
        **client_options: Any,
    ) -> None:
        try:
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
        except ImportError:  # pragma: no cover - depends on the install
            raise ImportError(
                "shared router state needs the redis package: pip install 'chatgate[redis]'"
            ) from None
        self.url = url
        self.namespace = namespace
        self._prefix = f"chatgate:rs:{{{namespace}}}:"
        self._leases_key = self._prefix + "leases"
        self._lease_ms = max(1, round(lease_s * 1000))
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._clock = clock
        self._unavailable = (ConnectionError, TimeoutError, ReadOnlyError, OSError)
        # One immediate retry on a dropped connection (a restarted Redis); redis-py's default
        # (10 retries with backoff) would hold every request for seconds while Redis is down.
        self._options = {
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
            "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
            **client_options,
        }
        self._conns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Conn] = (
            weakref.WeakKeyDictionary()
        )
        self._offset = 0.0
        self._resync_at = -math.inf
        self.lease = new_lease()
        self._holds = Holds(self._extend, lease_s / 3, self._unavailable)
        self.local = MemoryState()  # answers while Redis is unavailable (failure="open")
        secrets = (urlsplit(url).password or "", str(client_options.get("password") or ""))
        self.outage = Outage(
            namespace, retry_s, failure, on_fallback, on_refusal, secrets, clock=clock
        )

    # -- connection, clock, fallback ---------------------------------------------------------

    def _conn(self) -> _Conn:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        conn = self._conns.get(loop)
        if conn is None:
            client = redis.asyncio.Redis.from_url(self.url, **self._options)
            s = redis_scripts
            conn = self._conns[loop] = _Conn(
                client,
                *(
                    client.register_script(lua)
                    for lua in (s.VIEW, s.RESERVE, s.RELEASE, s.SUCCESS, s.FAILURE, s.LEASE)
                ),
            )
        return conn

    async def _ready(self) -> _Conn:
        """This loop's connection, with the clock offset measured at most a minute ago."""
        conn = self._conn()
        if time.monotonic() >= self._resync_at:
            before = self._clock()
            seconds, micros = await conn.client.time()
            after = self._clock()
            self._offset = seconds + micros / 1e6 - (before + after) / 2
            self._resync_at = time.monotonic() + _RESYNC_S
        return conn

    async def _call(
        self,
        remote: Callable[[_Conn], Awaitable[T]],
        local: Callable[[], Awaitable[T]],
        closed: Callable[[], T],
    ) -> tuple[T, bool]:
        """``remote`` on Redis; while Redis is unavailable ``local`` in memory (open) or
        ``closed`` (refuse, or drop). The flag says whether Redis answered."""
        outage = self.outage
        if outage.skip():
            return await outage.answer(local, closed), False
        probing = outage.down
        if probing:
            self.lease = new_lease()  # see the module docstring
        try:
            conn = await self._ready()
            if probing:
                await self._recover(conn)
            result = await remote(conn)
        except asyncio.CancelledError:
            self.lease = new_lease()  # the script may have run: see the docstring
            raise
        except self._unavailable as exc:
            if not probing:  # a reply lost as the outage began: its slot may count
                self._holds.orphans.add(self.lease)
            if outage.failed(exc) and not self._holds.any_local:
                self.local = MemoryState()  # not what an earlier outage left behind
            return await outage.answer(local, closed), False
        if probing:
            outage.recovered()
        return result, True

    async def _recover(self, conn: _Conn) -> None:
        """Settle what an outage left (leases.py): replay the releases never sent, then end
        the orphan leases no slot is held under."""
        unsent = self._holds.unsent
        while unsent:
            u = unsent.pop()
            args = [self._clock() + self._offset, u.lease, u.token_correction, self._ttl_ms]
            try:
                await conn.release([self._leases_key, self._key(u.id)], args)
            except BaseException:  # it may have run: never replay it, orphan its lease
                self._holds.orphans.add(u.lease)
                raise
        await self._end_orphans(conn)

    async def _end_orphans(self, conn: _Conn) -> None:
        ended = self._holds.to_end()
        if ended:
            await conn.client.hdel(self._leases_key, *ended)
        self._holds.orphans -= ended

    @property
    def degraded(self) -> bool:
        """True while Redis is unavailable (calls answered from memory, or refused)."""
        return self.outage.down

    @property
    def failure(self) -> SharedStateFailure:
        """``open`` or ``closed``: what calls get while Redis is unavailable (settable)."""
        return self.outage.failure

    @failure.setter
    def failure(self, value: SharedStateFailure) -> None:
        self.outage.failure = value

    def _key(self, id: str) -> str:
        return f"{self._prefix}d:{id}"

    def redis_client(self) -> Any:
        """This loop's client (closed by ``aclose``), for data kept beside the router state
        under the namespace (cache affinity, router/affinity.py)."""
        return self._conn().client

    @property
    def unavailable(self) -> tuple[type[BaseException], ...]:
        """The errors that mean Redis is unavailable (not a bug in a script)."""
        return self._unavailable

    # -- RouterState ---------------------------------------------------------------------------

    async def view(self, ids: Sequence[str], now: float) -> list[Stats]:
        if not ids:
            return []

        async def remote(conn: _Conn) -> list[Stats]:
            keys = [self._leases_key, *(self._key(id) for id in ids)]
            rows = await conn.view(keys, [now + self._offset])
            return [self._stats(row.split("\t")) for row in rows.decode().split("\n")]

        stats, _ = await self._call(remote, lambda: self.local.view(ids, now), self.outage.refuse)
        return stats

    def _stats(self, row: list[str]) -> Stats:
        cd, ho, pr, in_flight, lat, n, rpm, tpm, err, cr, ca = row
        return Stats(
            cooldown_until=float(cd) - self._offset if cd else 0.0,
            probing=bool(pr),
            half_open=bool(ho),
            in_flight=int(in_flight),
            latency_s=float(lat) if lat else None,
            samples=int(n) if n else 0,
            rpm_left=float(rpm) if rpm else None,
            tpm_left=float(tpm) if tpm else None,
            last_error=err or None,
            cooldown_reason=cr or None,
            cooled_at=float(ca) - self._offset if ca else 0.0,
        )

    async def reserve(self, id: str, limits: Limits, tokens: int, now: float) -> float:
        taken = [self.lease]  # the lease the script ran under (a probe takes a fresh one)

        async def remote(conn: _Conn) -> float:
            taken[0] = self.lease
            args = [
                now + self._offset,
                taken[0],
                self._lease_ms,
                self._ttl_ms,
                *(_opt(x) for x in (limits.rpm, limits.tpm, limits.max_parallel)),
                tokens,
            ]
            return float(await conn.reserve([self._leases_key, self._key(id)], args))

        wait, shared = await self._call(
            remote, lambda: self.local.reserve(id, limits, tokens, now), self.outage.refuse
        )
        if wait == 0.0:
            self._holds.take(id, taken[0] if shared else LOCAL)
            if shared:
                self._holds.keep_alive()
        return wait

    async def release(self, id: str, limits: Limits, token_correction: int, now: float) -> None:
        holds = self._holds
        lease = holds.give_back(id, self.lease)
        if lease == LOCAL:
            await self.local.release(id, limits, token_correction, now)
            return
        sent = False

        async def remote(conn: _Conn) -> None:
            nonlocal sent
            sent = True
            args = [now + self._offset, lease, token_correction, self._ttl_ms]
            await conn.release([self._leases_key, self._key(id)], args)

        _, shared = await self._call(
            remote, lambda: self.local.release(id, limits, token_correction, now), _dropped
        )
        if not shared and sent:
            holds.orphans.add(lease)  # its reply was lost: see leases.py
        elif not shared:
            holds.unsent.append(Unsent(id, lease, token_correction))  # replayed when back
        elif lease in holds.orphans and lease not in holds.leases():
            await self._call(self._end_orphans, _nothing, _dropped)
        if not holds.leases():
            holds.stop_beat()

    async def record_success(self, id: str, latency_s: float, now: float) -> None:
        async def remote(conn: _Conn) -> None:
            keys = [self._key(id), f"{self._prefix}f:{id}"]
            await conn.success(keys, [now + self._offset, latency_s, EWMA_ALPHA, self._ttl_ms])

        await self._call(remote, lambda: self.local.record_success(id, latency_s, now), _dropped)

    async def record_failure(
        self,
        id: str,
        error: str,
        health: Health,
        now: float,
        *,
        cool_for: float | None = None,
    ) -> float | None:
        async def remote(conn: _Conn) -> float | None:
            keys = [self._key(id), f"{self._prefix}f:{id}"]
            args = [
                now + self._offset,
                error,
                health.allowed_fails,
                health.window,
                health.cooldown,
                _opt(cool_for),
                self._ttl_ms,
            ]
            until = await conn.failure(keys, args)
            return float(until) - self._offset if until else None

        until, _ = await self._call(
            remote,
            lambda: self.local.record_failure(id, error, health, now, cool_for=cool_for),
            _dropped,
        )
        return until

    async def _extend(self, leases: list[str]) -> None:
        await self._conn().lease([self._leases_key], [self._lease_ms, *leases])

    # -- health, lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise unless Redis answers (a readiness check)."""
        await self._conn().client.ping()

    async def aclose(self) -> None:
        """End this process's lease (its slots stop counting at once) and close this loop's
        client. Other loops' clients close with their loops."""
        beat = self._holds.stop_beat()
        if beat is not None and beat.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(beat, return_exceptions=True)
        conn = self._conns.pop(asyncio.get_running_loop(), None)
        if conn is None:
            return
        leases = [self.lease, *self._holds.leases()]
        try:
            await conn.client.hdel(self._leases_key, *leases)
        except self._unavailable as exc:
            log.debug("shared router state: lease not ended: %s", exc)
        await conn.client.aclose()


def _opt(value: float | None) -> float | str:
    return "" if value is None else value
