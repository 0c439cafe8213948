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

Redis down. Fail open, to this process's memory: a call that finds Redis unavailable (refused,
timed out, read-only) is answered by a MemoryState kept for the purpose, with one warning in
the log per outage and ``on_fallback`` called per call (the gateway counts them in
``chatgate_shared_state_fallbacks``). Limits and cooldowns then hold per process, as without
Redis. Every ``retry_s`` one call tries Redis again; when it answers, shared state resumes
under a fresh lease, so a slot taken in a reply that was lost cannot leak for longer than a
lease (the same on a cancelled call: the lease changes; the old one lives on only while slots
taken under it are held). Other Redis errors (a script bug) are raised, not hidden.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chatgate.router import redis_scripts
from chatgate.router.state import EWMA_ALPHA, Health, Limits, MemoryState, Stats

__all__ = ["RedisState"]

log = logging.getLogger("chatgate.router")

T = TypeVar("T")
_LOCAL = ""  # the lease of a slot taken in the fallback MemoryState
_RESYNC_S = 60.0


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
        on_fallback: Callable[[], None] | None = None,
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
        self._retry_s = retry_s
        self._clock = clock
        self._on_fallback = on_fallback
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
        self.lease = uuid.uuid4().hex[:16]
        self._holds: dict[str, dict[str, int]] = {}  # id -> lease (or _LOCAL) -> slots held
        self._beat: asyncio.Task[None] | None = None
        self.local = MemoryState()  # answers while Redis is unavailable
        self._down_until: float | None = None

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
        self, remote: Callable[[_Conn], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> tuple[T, bool]:
        """``remote`` on Redis, or ``local`` in memory while Redis is unavailable. The flag
        says which answered."""
        if self._down_until is not None:
            if time.monotonic() < self._down_until:
                return await self._locally(local), False
            self._down_until = time.monotonic() + self._retry_s  # this call probes; others wait
        try:
            result = await remote(await self._ready())
        except asyncio.CancelledError:
            self.lease = uuid.uuid4().hex[:16]  # the script may have run: see the docstring
            raise
        except self._unavailable as exc:
            if self._down_until is None:
                log.warning(
                    "shared router state: Redis unavailable (%s: %s); limits and cooldowns "
                    "hold per process until it is back",
                    type(exc).__name__,
                    exc,
                )
                if not any(_LOCAL in held for held in self._holds.values()):
                    self.local = MemoryState()  # not what an earlier outage left behind
            self._down_until = time.monotonic() + self._retry_s
            return await self._locally(local), False
        if self._down_until is not None:
            self._down_until = None
            self.lease = uuid.uuid4().hex[:16]  # see the module docstring
            log.warning("shared router state: Redis is back; limits are shared again")
        return result, True

    async def _locally(self, local: Callable[[], Awaitable[T]]) -> T:
        if self._on_fallback is not None:
            self._on_fallback()
        return await local()

    @property
    def degraded(self) -> bool:
        """True while calls are answered from this process's memory."""
        return self._down_until is not None

    def _key(self, id: str) -> str:
        return f"{self._prefix}d:{id}"

    # -- RouterState ---------------------------------------------------------------------------

    async def view(self, ids: Sequence[str], now: float) -> list[Stats]:
        if not ids:
            return []

        async def remote(conn: _Conn) -> list[Stats]:
            keys = [self._leases_key, *(self._key(id) for id in ids)]
            rows = await conn.view(keys, [now + self._offset])
            return [self._stats(row.split("\t")) for row in rows.decode().split("\n")]

        stats, _ = await self._call(remote, lambda: self.local.view(ids, now))
        return stats

    def _stats(self, row: list[str]) -> Stats:
        cd, ho, pr, in_flight, lat, n, rpm, tpm, err = row
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
        )

    async def reserve(self, id: str, limits: Limits, tokens: int, now: float) -> float:
        lease = self.lease

        async def remote(conn: _Conn) -> float:
            args = [
                now + self._offset,
                lease,
                self._lease_ms,
                self._ttl_ms,
                *(_opt(x) for x in (limits.rpm, limits.tpm, limits.max_parallel)),
                tokens,
            ]
            return float(await conn.reserve([self._leases_key, self._key(id)], args))

        wait, shared = await self._call(remote, lambda: self.local.reserve(id, limits, tokens, now))
        if wait == 0.0:
            held = self._holds.setdefault(id, {})
            key = lease if shared else _LOCAL
            held[key] = held.get(key, 0) + 1
            if shared:
                self._keep_leases()
        return wait

    async def release(self, id: str, limits: Limits, token_correction: int, now: float) -> None:
        held = self._holds.get(id, {})
        lease = _LOCAL if _LOCAL in held else next(iter(held), self.lease)
        if lease in held:
            held[lease] -= 1
            if not held[lease]:
                del held[lease]
                if not held:
                    self._holds.pop(id, None)
        if lease == _LOCAL:
            await self.local.release(id, limits, token_correction, now)
            return

        async def remote(conn: _Conn) -> None:
            args = [now + self._offset, lease, token_correction, self._ttl_ms]
            await conn.release([self._leases_key, self._key(id)], args)

        await self._call(remote, lambda: self.local.release(id, limits, token_correction, now))
        if not self._leases_held() and self._beat is not None:
            self._stop_beat()

    async def record_success(self, id: str, latency_s: float, now: float) -> None:
        async def remote(conn: _Conn) -> None:
            keys = [self._key(id), f"{self._prefix}f:{id}"]
            await conn.success(keys, [now + self._offset, latency_s, EWMA_ALPHA, self._ttl_ms])

        await self._call(remote, lambda: self.local.record_success(id, latency_s, now))

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
            remote, lambda: self.local.record_failure(id, error, health, now, cool_for=cool_for)
        )
        return until

    # -- leases ------------------------------------------------------------------------------

    def _leases_held(self) -> list[str]:
        return sorted({lease for held in self._holds.values() for lease in held} - {_LOCAL})

    def _keep_leases(self) -> None:
        """Keep a heartbeat running while this process holds slots in Redis."""
        if self._beat is None or self._beat.done():
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while leases := self._leases_held():
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                await self._conn().lease([self._leases_key], [self._lease_ms, *leases])
            except self._unavailable as exc:  # the calls themselves fall back and warn
                log.debug("shared router state: lease not extended: %s", exc)

    def _stop_beat(self) -> None:
        beat, self._beat = self._beat, None
        if beat is not None and not beat.done() and not beat.get_loop().is_closed():
            beat.get_loop().call_soon_threadsafe(beat.cancel)

    # -- health, lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise unless Redis answers (a readiness check)."""
        await self._conn().client.ping()

    async def aclose(self) -> None:
        """End this process's lease (its slots stop counting at once) and close this loop's
        client. Other loops' clients close with their loops."""
        beat = self._beat
        self._stop_beat()
        if beat is not None and beat.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(beat, return_exceptions=True)
        conn = self._conns.pop(asyncio.get_running_loop(), None)
        if conn is None:
            return
        leases = [self.lease, *self._leases_held()]
        try:
            await conn.client.hdel(self._leases_key, *leases)
        except self._unavailable as exc:
            log.debug("shared router state: lease not ended: %s", exc)
        await conn.client.aclose()


def _opt(value: float | None) -> float | str:
    return "" if value is None else value
