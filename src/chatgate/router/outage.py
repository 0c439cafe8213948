"""How RedisState lives through Redis being unavailable.

``Outage`` knows whether Redis is down as far as this process can tell and when to try it
again (one call every ``retry_s`` probes; the others do not wait on a dead server), logs each
transition once, and decides what a call gets meanwhile, as
``router_settings.shared_state_failure`` says:

- ``open`` (the default): the answer of this process's memory, so limits and cooldowns hold
  per process; ``on_fallback`` is called per call.
- ``closed``: a call that looks at the state or takes a slot (``view``, ``reserve``) is refused
  with SharedStateUnavailableError and ``on_refusal(reason)``; what only records how a request
  ended (``release``, ``record_success``, ``record_failure``) is dropped, never raised into a
  caller whose answer is already in.

``reason``: ``unreachable`` (refused, reset, no route), ``timeout``, ``read_only`` (a replica,
after a failover) or ``auth`` (Redis refused the credentials).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn, TypeVar

from chatgate.config import SharedStateFailure
from chatgate.errors import SharedStateUnavailableError

__all__ = ["Outage", "reason_of"]

log = logging.getLogger("chatgate.router")

T = TypeVar("T")

_MEANWHILE = {
    "open": "limits and cooldowns hold per process until it is back",
    "closed": "calls that need shared limits are refused until it is back "
    "(shared_state_failure: closed)",
}


class Outage:
    def __init__(
        self,
        namespace: str,
        retry_s: float,
        failure: SharedStateFailure,
        on_fallback: Callable[[], None] | None,
        on_refusal: Callable[[str], None] | None,
        secrets: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._where = f"shared router state [{namespace}]"
        self._clock = clock
        self.retry_s = retry_s
        self.failure: SharedStateFailure = failure
        self.on_fallback = on_fallback
        self.on_refusal = on_refusal
        self.down_until: float | None = None
        self.reason = ""
        self._secrets = [s for s in secrets if s]  # never in a log line

    @property
    def down(self) -> bool:
        return self.down_until is not None

    def skip(self) -> bool:
        """True: Redis is down and the next try is not due; answer without it. False: try
        Redis (while down, this call is the probe and the others wait ``retry_s`` more)."""
        if self.down_until is None:
            return False
        now = self._clock()
        if now < self.down_until:
            return True
        self.down_until = now + self.retry_s
        return False

    def failed(self, exc: BaseException) -> bool:
        """Redis did not answer. True when this begins an outage (logged once, here)."""
        begins = self.down_until is None
        self.down_until = self._clock() + self.retry_s
        self.reason = reason_of(exc)
        if begins:
            text = str(exc)
            for secret in self._secrets:
                text = text.replace(secret, "***")
            log.warning(
                "%s: Redis unavailable (%s: %s); %s",
                self._where,
                type(exc).__name__,
                text,
                _MEANWHILE[self.failure],
            )
        return begins

    def recovered(self) -> None:
        self.down_until = None
        if self.failure == "open":
            log.warning("%s: Redis is back; limits are shared again", self._where)
        else:
            log.info("%s: Redis is back; calls are served again", self._where)

    async def answer(self, local: Callable[[], Awaitable[T]], closed: Callable[[], T]) -> T:
        """What a call gets while Redis is unavailable: ``local`` (open) or ``closed``."""
        if self.failure == "closed":
            return closed()
        if self.on_fallback is not None:
            self.on_fallback()
        return await local()

    def refuse(self) -> NoReturn:
        if self.on_refusal is not None:
            self.on_refusal(self.reason)
        wait = max(0.0, (self.down_until or 0.0) - self._clock())
        raise SharedStateUnavailableError(
            f"the shared limit state in Redis is unavailable ({self.reason}) and "
            "router_settings.shared_state_failure is 'closed': refused without sending a "
            f"request; Redis is tried again in {wait:.1f}s",
            retry_after=round(wait, 3),
        )


def reason_of(exc: BaseException) -> str:
    from redis.exceptions import AuthenticationError, ReadOnlyError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, ReadOnlyError):
        return "read_only"
    if isinstance(exc, AuthenticationError):
        return "auth"
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "timeout"
    return "unreachable"
