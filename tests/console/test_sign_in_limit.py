"""The console sign-in's limit on wrong keys: over HTTP from several loopback addresses
against a real gateway, and the limiter's clock-driven expiry and backoff on its own."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3

from chatgate.server.console.sign_in_limit import SignInLimiter
from chatgate.server.errors import GatewayError
from tests.console.conftest import MASTER, new_key
from tests.fakes.gateway import Gateway


def sign_in(gw: Gateway, source: str, key: str) -> urllib3.BaseHTTPResponse:
    """POST /ui/session from the loopback address ``source`` (127.0.0.0/8 is all local)."""
    with urllib3.PoolManager(source_address=(source, 0)) as pool:
        return pool.request(
            "POST", f"{gw.url}/ui/session", json={"key": key}, timeout=10, retries=False
        )


def test_the_sixth_wrong_key_is_refused_while_another_address_signs_in(gateway: Gateway) -> None:
    admin_key, _ = new_key(gateway, name="ops", metadata={"role": "admin"})
    attacker = "127.0.0.3"
    guesses = [
        MASTER + "x",
        "sk-cg-" + "0" * 40,
        "wrong",
        admin_key[:-1] + ("0" if admin_key[-1] != "0" else "1"),
        "sk-master-console-test-8",
    ]
    for guess in guesses:
        assert sign_in(gateway, attacker, guess).status == 401
    sixth = sign_in(gateway, attacker, "another-guess")
    assert sixth.status == 429, sixth.data
    body: dict[str, Any] = sixth.json()
    assert body["error"]["code"] == "sign_in_limited"
    retry_after = int(sixth.headers["retry-after"])
    assert 0 < retry_after <= 60
    assert f"{retry_after} s" in body["error"]["message"]
    # the right key from the locked address gets the very same answer: nothing leaks
    right = sign_in(gateway, attacker, MASTER)
    assert right.status == 429
    assert right.json()["error"]["message"].startswith("too many failed sign-ins")
    assert "set-cookie" not in right.headers
    # the operator elsewhere is not locked out, with either kind of key
    assert sign_in(gateway, "127.0.0.4", MASTER).status == 200
    assert sign_in(gateway, "127.0.0.5", admin_key).status == 200


def test_a_non_admin_key_counts_as_a_failure_and_malformed_bodies_do_not(
    gateway: Gateway,
) -> None:
    plain_key, _ = new_key(gateway, name="plain")
    source = "127.0.0.6"
    for _ in range(10):  # no key at all: a 400, never counted
        assert sign_in(gateway, source, "").status == 400
    for _ in range(5):
        assert sign_in(gateway, source, plain_key).status == 403
    assert sign_in(gateway, source, MASTER).status == 429


def test_tries_sent_at_once_cannot_outrun_the_count(gateway: Gateway) -> None:
    """Twenty virtual-key guesses at once (each waits on the key store): five are judged."""
    source = "127.0.0.7"
    guesses = [f"sk-cg-{n:040d}" for n in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(lambda g: sign_in(gateway, source, g).status, guesses))
    assert statuses == [401] * 5 + [429] * 15


def refused_for(limiter: SignInLimiter, address: str) -> float | None:
    try:
        limiter.check(address)
    except GatewayError as exc:
        return float(exc.headers["retry-after"]) if exc.status == 429 else -1.0
    return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lockout_expires_and_tries_while_locked_do_not_extend_it() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock)
    for _ in range(5):
        assert refused_for(limiter, "a") is None
        limiter.attempt("a")
    assert refused_for(limiter, "a") == 60
    for _ in range(100):  # a bot hammering the locked address: refused unread, not counted
        clock.now += 0.5
        assert refused_for(limiter, "a") is not None
    clock.now = 1000.0 + 60.0
    assert refused_for(limiter, "a") is None


def test_repeated_lockouts_back_off_to_a_cap_and_reset_after_quiet() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock, max_lockout_s=300.0)
    waits = []
    for _ in range(5):
        for _ in range(5):
            limiter.attempt("a")
        wait = refused_for(limiter, "a")
        assert wait is not None
        waits.append(wait)
        clock.now += wait
    assert waits == [60, 120, 240, 300, 300]  # doubling, never past the cap
    clock.now += 301  # quiet for longer than the cap: the backoff starts over
    for _ in range(5):
        limiter.attempt("a")
    assert refused_for(limiter, "a") == 60


def test_the_global_lock_spares_addresses_that_signed_in_and_expires() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock, globally=20)
    limiter.succeeded("operator", limiter.attempt("operator"))
    for n in range(20):  # twenty addresses, one guess each: none is locked on its own
        limiter.attempt(f"bot-{n}")
    assert refused_for(limiter, "fresh") == 60
    assert refused_for(limiter, "bot-0") == 60
    assert refused_for(limiter, "operator") is None
    clock.now += 60
    assert refused_for(limiter, "fresh") is None


def test_a_right_key_starts_the_address_over_and_an_outage_is_no_failure() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock)
    for _ in range(4):
        limiter.attempt("a")
        clock.now += 1
    limiter.succeeded("a", limiter.attempt("a"))  # the fifth try was the right key
    for _ in range(4):
        limiter.attempt("a")
        clock.now += 1
    assert refused_for(limiter, "a") is None  # four failures since the success
    for _ in range(3):  # the key store was down: no guess was judged
        limiter.withdraw("a", limiter.attempt("a"))
        clock.now += 1
    assert refused_for(limiter, "a") is None
    limiter.attempt("a")
    assert refused_for(limiter, "a") == 60


def test_the_addresses_held_are_bounded() -> None:
    addresses = 3
    limiter = SignInLimiter(max_addresses=addresses)
    for n in range(50):
        limiter.attempt(f"10.0.0.{n}")
        limiter.succeeded(f"10.1.0.{n}", limiter.attempt(f"10.1.0.{n}"))
    assert len(limiter._addresses) <= addresses
    assert len(limiter._known) <= addresses
