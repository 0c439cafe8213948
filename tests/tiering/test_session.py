"""A conversation's tier may rise, never fall, until its session expires; memory is bounded."""

from __future__ import annotations

from chatgate.tiering.session import SessionTiers


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_floor_rises_and_never_drops() -> None:
    sessions = SessionTiers(ttl_s=60, max_sessions=10, clock=Clock())
    assert sessions.floor("a") == 0
    sessions.reached("a", 2)
    sessions.reached("a", 0)  # a later cheap turn does not lower it
    assert sessions.floor("a") == 2
    assert sessions.floor("b") == 0
    assert sessions.floor(None) == 0


def test_a_session_expires_after_its_ttl_since_last_seen() -> None:
    clock = Clock()
    sessions = SessionTiers(ttl_s=60, max_sessions=10, clock=clock)
    sessions.reached("a", 1)
    clock.now = 50
    sessions.reached("a", 1)  # seen again: the TTL starts over
    clock.now = 100
    assert sessions.floor("a") == 1
    clock.now = 111
    assert sessions.floor("a") == 0
    assert len(sessions) == 0


def test_past_max_sessions_the_least_recently_seen_is_forgotten() -> None:
    sessions = SessionTiers(ttl_s=60, max_sessions=2, clock=Clock())
    sessions.reached("a", 1)
    sessions.reached("b", 1)
    sessions.reached("a", 1)
    sessions.reached("c", 1)
    assert len(sessions) == 2
    assert (sessions.floor("a"), sessions.floor("b"), sessions.floor("c")) == (1, 0, 1)
