"""The key store (the gateway's database) as this process sees it while it is unreachable.

One request every ``retry_s`` probes the database; the others are answered at once (503,
``Retry-After``) instead of each waiting on a dead server. The log gets a line when the outage
begins, one every ``report_s`` while it lasts with the number of requests refused meanwhile,
and one when it ends: never a line per request.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from chatgate.cost.spend_refused import refused_for_data

__all__ = ["STORE_ERRORS", "StoreOutage", "is_data_refusal", "is_store_error"]

# What the database raises when it is unreachable: SQLAlchemy's errors, and the driver's own
# connection errors (asyncpg raises OSError subclasses at connect, TimeoutError among them).
STORE_ERRORS = (SQLAlchemyError, OSError)
_DRIVERS = frozenset({"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3"})


def is_store_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's: a SQLAlchemy error, or an OSError the driver raised
    (judged by where it was raised, so an OSError from anywhere else is not taken for a
    database outage)."""
    if isinstance(exc, SQLAlchemyError):
        # The database refusing a value (a NUL in PostgreSQL's text, a number out of range) is
        # an answer, not an outage: counting it as one made every request needing the store
        # a 503 until the next probe, whatever sent the value.
        return not refused_for_data(exc)
    if not isinstance(exc, OSError):
        return False
    return any(
        str(frame.f_globals.get("__name__", "")).partition(".")[0] in _DRIVERS
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def is_data_refusal(exc: BaseException) -> bool:
    """The database refused a value of the request (cost/spend_refused): the request's
    fault, answered 400, not an outage."""
    return isinstance(exc, SQLAlchemyError) and refused_for_data(exc)


log = logging.getLogger("chatgate.server")


class StoreOutage:
    def __init__(
        self,
        what: str = "key store",
        *,
        retry_s: float = 1.0,
        report_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self.retry_s = retry_s
        self.report_s = report_s
        self._clock = clock
        self.down_since: float | None = None
        self._next_probe = 0.0
        self._next_report = 0.0
        self._refused_since_report = 0
        self.refused = 0  # during the current outage

    def skip(self) -> bool:
        """True: the store is down and this request is not the probe; answer without it."""
        if self.down_since is None:
            return False
        now = self._clock()
        if now < self._next_probe:
            return True
        self._next_probe = now + self.retry_s
        return False

    def failed(self, exc: BaseException) -> None:
        now = self._clock()
        self._next_probe = now + self.retry_s
        if self.down_since is None:
            self.down_since = now
            self._next_report = now + self.report_s
            self.refused = self._refused_since_report = 0
            # the class and the driver's text: SQL parameters are hidden by the engine
            log.warning(
                "%s unavailable (%s: %s); requests that need it get 503 until it answers",
                self._what,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )

    def refuse(self) -> int:
        """Count a refused request; the Retry-After to send (whole seconds, at least 1)."""
        self.refused += 1
        self._refused_since_report += 1
        now = self._clock()
        if self.down_since is not None and now >= self._next_report:
            log.warning(
                "%s still unavailable after %.0fs: %d requests refused in the last %.0fs",
                self._what,
                now - self.down_since,
                self._refused_since_report,
                self.report_s,
            )
            self._refused_since_report = 0
            self._next_report = now + self.report_s
        return max(1, math.ceil(self._next_probe - now))

    def recovered(self) -> None:
        if self.down_since is None:
            return
        log.warning(
            "%s available again after %.1fs; %d requests were refused meanwhile",
            self._what,
            self._clock() - self.down_since,
            self.refused,
        )
        self.down_since = None
