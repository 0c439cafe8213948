"""How many wrong keys the console's sign-in takes before it stops listening for a while.

Per client address: ``per_address`` failures within ``window_s`` lock that address out for
``window_s``, then twice that on each lockout that follows before it has been quiet for
``max_lockout_s``, never longer than ``max_lockout_s``. Globally: ``globally`` failures
within ``window_s`` (many addresses guessing together) lock out every address for
``window_s``, except those that signed in successfully within the last ``known_s``.

A try counts as a failure from the moment it is let through until it is known to be right
(``succeeded``) or no guess at all (``withdraw``: the database was down): tries sent at once
cannot outrun the count while their keys are being looked up.

Why it cannot lock the operator out for good: every lock expires (tries made while locked
are refused unread and not counted, so they do not extend it), and the global lock spares
the addresses the operator signed in from, which an attacker cannot add to without a key.
A refusal is the same whether the key tried is right or wrong, so it tells nothing about
the key. Counted in this process's memory; with Redis configured, sign_in_shared.py counts
each address's failures for every worker and instance too.
"""

from __future__ import annotations

import math
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from chatgate.server.errors import GatewayError
from chatgate.server.services import Services

__all__ = ["MAX_LOCKOUT_S", "PER_ADDRESS", "WINDOW_S", "SignInLimiter", "limited", "limiter_for"]

PER_ADDRESS = 5
WINDOW_S = 60.0
MAX_LOCKOUT_S = 900.0


def limited(wait_s: float) -> GatewayError:
    """The 429 for an address that may not try a key for another ``wait_s`` seconds."""
    seconds = max(1, math.ceil(wait_s))
    return GatewayError(
        429,
        f"too many failed sign-ins; try again in {seconds} s",
        type_="rate_limit_error",
        code="sign_in_limited",
        headers={"retry-after": str(seconds)},
    )


@dataclass(slots=True)
class _Address:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    locked_by: float | None = None  # the try that locked it (a withdrawn one unlocks)
    lockouts: int = 0  # in a row, for the backoff
    last_failure: float = 0.0


class SignInLimiter:
    def __init__(
        self,
        *,
        per_address: int = PER_ADDRESS,
        globally: int = 100,
        window_s: float = WINDOW_S,
        max_lockout_s: float = MAX_LOCKOUT_S,
        known_s: float = 86_400.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_address = per_address
        self._globally = globally
        self._window_s = window_s
        self._max_lockout_s = max_lockout_s
        self._known_s = known_s
        self._max_addresses = max_addresses
        self._clock = clock
        self._addresses: OrderedDict[str, _Address] = OrderedDict()  # least recent first
        self._known: OrderedDict[str, float] = OrderedDict()  # address -> last sign-in
        self._global: deque[float] = deque()
        self._global_until = 0.0
        self._global_by: float | None = None

    def attempt(self, address: str, *, per_address: bool = True) -> float:
        """Raise the 429 when ``address`` may not try a key now; else count the try as a
        failure and return its time (for ``succeeded`` or ``withdraw``). ``per_address``
        False: the address's count is kept elsewhere (Redis); only the global one here."""
        self.check(address)
        return self._failed(address, per_address)

    def check(self, address: str) -> None:
        """Raise the 429 when ``address`` may not try a key now (counts nothing)."""
        now = self._clock()
        wait = 0.0
        entry = self._addresses.get(address)
        if entry is not None and entry.locked_until > now:
            wait = entry.locked_until - now
        if self._global_until > now and not self._is_known(address, now):
            wait = max(wait, self._global_until - now)
        if wait > 0:
            raise limited(wait)

    def _failed(self, address: str, per_address: bool) -> float:
        now = self._clock()
        if per_address:
            self._address_failed(self._entry(address), now)
        _trim(self._global, now - self._window_s).append(now)
        if len(self._global) >= self._globally:
            self._global_until, self._global_by = now + self._window_s, now
        return now

    def _address_failed(self, entry: _Address, now: float) -> None:
        if now - entry.last_failure > self._max_lockout_s:
            entry.lockouts = 0  # quiet long enough: the backoff starts over
        entry.last_failure = now
        _trim(entry.failures, now - self._window_s).append(now)
        # the failures stay: a lock outlasts the window, so they have aged out when it ends
        if len(entry.failures) >= self._per_address:
            lockout = min(self._window_s * 2**entry.lockouts, self._max_lockout_s)
            entry.locked_until, entry.locked_by = now + lockout, now
            entry.lockouts += 1

    def withdraw(self, address: str, at: float) -> None:
        """The try at ``at`` was no guess (the key could not be looked up): not a failure."""
        entry = self._addresses.get(address)
        if entry is not None:
            if at in entry.failures:
                entry.failures.remove(at)
            if entry.locked_by == at:
                entry.locked_until, entry.locked_by = 0.0, None
                entry.lockouts -= 1
        if at in self._global:
            self._global.remove(at)
        if self._global_by == at:
            self._global_until, self._global_by = 0.0, None

    def succeeded(self, address: str, at: float) -> None:
        """The try at ``at`` was a right key: the address starts over and is known."""
        self.withdraw(address, at)
        self._addresses.pop(address, None)
        self._known[address] = self._clock()
        self._known.move_to_end(address)
        while len(self._known) > self._max_addresses:
            self._known.popitem(last=False)

    def _is_known(self, address: str, now: float) -> bool:
        at = self._known.get(address)
        return at is not None and now - at < self._known_s

    def _entry(self, address: str) -> _Address:
        entry = self._addresses.get(address)
        if entry is None:
            entry = self._addresses[address] = _Address()
            while len(self._addresses) > self._max_addresses:
                self._addresses.popitem(last=False)
        self._addresses.move_to_end(address)
        return entry


def _trim(times: deque[float], before: float) -> deque[float]:
    while times and times[0] <= before:
        times.popleft()
    return times


# One per gateway (its services outlive a config reload); weak, so a closed one takes it along.
_BY_SERVICES: weakref.WeakKeyDictionary[Services, SignInLimiter] = weakref.WeakKeyDictionary()


def limiter_for(services: Services) -> SignInLimiter:
    found = _BY_SERVICES.get(services)
    if found is None:
        found = _BY_SERVICES[services] = SignInLimiter()
    return found
