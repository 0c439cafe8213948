"""What a group's runner needs of the Router that owns it, and nothing more: the shared state,
the settings and health policy, and the injected clock, sleep and random source."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chatgate.config import RouterSettings
from chatgate.router.state import Health, MemoryState, RouterState

__all__ = ["Runtime", "state_for"]


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: RouterSettings
    state: RouterState
    health: Health
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    rng: random.Random
    # ``now()`` is the clock itself, not a method calling it: a routed call reads it ~6 times.
    now: Callable[[], float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", self.clock)  # frozen: set once, here


def state_for(settings: RouterSettings, clock: Callable[[], float]) -> RouterState:
    """The state a Router with these settings keeps: in memory, or shared through Redis."""
    url = settings.shared_state_url()
    if url is None:
        return MemoryState()
    from chatgate.router.redis_state import RedisState

    return RedisState(
        url,
        namespace=settings.redis_namespace,
        clock=clock,
        failure=settings.shared_state_failure,
    )
