"""Budgets: reserve before, settle after, on the memory backend and on real SQLite and
PostgreSQL; the 100-concurrent-calls race against a $0.01 budget through the real client."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

import chatgate
from chatgate.cost.budget_backends import BudgetBackend, MemoryBudgetBackend
from chatgate.cost.budgets import Budget, BudgetAlert, Budgets
from chatgate.cost.budgets_sql import SqlBudgetBackend
from chatgate.store.engine import create_engine
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json

D = Decimal
HI = [{"role": "user", "content": "hi"}]  # 8 prompt tokens on gpt-4o
NOON = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC).timestamp()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
async def backend_factory(store_url: str | None) -> AsyncIterator[Callable[[], BudgetBackend]]:
    """Makes backends over one store; each SQL one has its own engine and connection pool,
    as separate processes would."""
    if store_url is None:
        shared = MemoryBudgetBackend()
        yield lambda: shared
        return
    url = store_url
    opened = [await SqlBudgetBackend.open(url)]  # creates the schema

    def make() -> BudgetBackend:
        opened.append(SqlBudgetBackend(create_engine(url)))
        return opened[-1]

    yield make
    for backend in opened:
        await backend.aclose()


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_race_100_concurrent_calls_never_overspend(
    backend_factory: Callable[[], BudgetBackend], fake: FakeOpenAI
) -> None:
    limit = D("0.01")
    # Each answer: 8 prompt + 40 output tokens on gpt-4o = 8 x $2.50/M + 40 x $10/M.
    fake.script(
        *[
            Reply(json=completion_json("ok", model="gpt-4o", prompt_tokens=8, completion_tokens=40))
            for _ in range(100)
        ]
    )
    instances = [
        Budgets([Budget("global", limit, "daily")], backend=backend_factory()) for _ in range(4)
    ]
    spent: list[Decimal] = []
    refusals: list[chatgate.BudgetExceededError] = []

    async def call(n: int) -> None:
        budgets = instances[n % len(instances)]
        try:
            hold = await budgets.reserve("openai/gpt-4o", HI, max_tokens=50)
        except chatgate.BudgetExceededError as exc:
            refusals.append(exc)
            return
        response = await chatgate.acompletion(
            "openai/gpt-4o", HI, max_tokens=50, api_key="sk", api_base=fake.base_url
        )
        assert response.cost == D("0.00042")
        await budgets.settle(hold, response.cost)
        spent.append(response.cost)

    await asyncio.gather(*(call(n) for n in range(100)))
    [state] = await instances[0].status(model="openai/gpt-4o")
    assert state.spent == sum(spent)
    assert state.spent <= limit
    assert state.reserved == 0
    assert len(spent) >= 10  # the budget was used, not refused wholesale
    assert len(refusals) == 100 - len(spent)
    error = refusals[-1]
    assert (error.status_code, error.code, error.retryable) == (402, "budget_exceeded", False)
    assert error.remaining < D("0.00052")  # less than one call's worst case was left
    assert error.resets_at is not None


async def test_refusal_names_what_is_left_and_when_it_resets(
    backend_factory: Callable[[], BudgetBackend],
) -> None:
    budgets = Budgets(
        [Budget("key", D("1"), "daily", subject="*")], backend=backend_factory(), clock=Clock()
    )
    hold = await budgets.reserve_amount(D("0.75"), model="m", key="k1")
    await budgets.settle(hold, D("0.70"))
    with pytest.raises(chatgate.BudgetExceededError) as caught:
        await budgets.reserve_amount(D("0.31"), model="m", key="k1")
    error = caught.value
    assert error.budget == "key:k1:daily"
    assert error.remaining == D("0.3")
    assert error.resets_at == dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    assert "has $0.3 left" in str(error)
    other = await budgets.reserve_amount(D("0.9"), model="m", key="k2")  # its own budget
    await budgets.release(other)


async def test_scopes_windows_and_no_exemptions(
    backend_factory: Callable[[], BudgetBackend],
) -> None:
    clock = Clock()
    budgets = Budgets(
        [
            Budget("team", D("1"), "monthly", subject="red"),
            Budget("model", D("5"), "lifetime", subject="openai/gpt-4o"),
            Budget("global", D("10"), "daily"),
        ],
        backend=backend_factory(),
        clock=clock,
    )
    ids = [x.budget_id for x in budgets.lines_for(model="openai/gpt-4o", key="master", team="red")]
    assert ids == ["team:red:monthly", "model:openai/gpt-4o:lifetime", "global:*:daily"]
    assert [x.budget_id for x in budgets.lines_for(model="x", team="blue")] == ["global:*:daily"]
    hold = await budgets.reserve_amount(D("0.9"), model="openai/gpt-4o", team="red")
    await budgets.settle(hold, D("0.9"))
    with pytest.raises(chatgate.BudgetExceededError, match="team:red:monthly"):
        await budgets.reserve_amount(D("0.2"), model="openai/gpt-4o", team="red")
    clock.now += 86400 * 10  # next month: the team budget starts over, lifetime does not
    states = {s.budget_id: s for s in await budgets.status(model="openai/gpt-4o", team="red")}
    assert states["team:red:monthly"].spent == 0
    assert states["team:red:monthly"].period == "2026-12"
    assert states["model:openai/gpt-4o:lifetime"].spent == D("0.9")
    assert states["global:*:daily"].remaining == D("10")


async def test_alerts_fire_once_per_threshold(
    backend_factory: Callable[[], BudgetBackend], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[BudgetAlert] = []
    budgets = Budgets(
        [Budget("user", D("1"), "daily", subject="ann", alerts=(D("0.5"), D("0.8")))],
        backend=backend_factory(),
        on_alert=seen.append,
    )
    with caplog.at_level(logging.WARNING, logger="chatgate.budget"):
        for amount in ("0.4", "0.2", "0.1", "0.15"):
            hold = await budgets.reserve_amount(D(amount), model="m", user="ann")
            await budgets.settle(hold, D(amount))
    assert [(a.threshold, a.spent) for a in seen] == [(D("0.5"), D("0.6")), (D("0.8"), D("0.85"))]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("budget user:ann:daily: 50% of $1 used")
    assert len(lines) == 2


async def test_settle_none_charges_the_hold_and_sweep_frees_dead_holds(
    backend_factory: Callable[[], BudgetBackend],
) -> None:
    clock = Clock()
    budgets = Budgets(
        [Budget("global", D("1"), "lifetime")],
        backend=backend_factory(),
        clock=clock,
        reservation_ttl_s=60,
    )
    hold = await budgets.reserve_amount(D("0.25"), model="m")
    await budgets.settle(hold, None)  # cost unknown: the worst case is what was spent
    dead = await budgets.reserve_amount(D("0.5"), model="m")
    [state] = await budgets.status(model="m")
    assert (state.spent, state.reserved) == (D("0.25"), D("0.5"))
    clock.now += 61
    assert await budgets.sweep_expired() == 1
    [state] = await budgets.status(model="m")
    assert (state.spent, state.reserved) == (D("0.25"), 0)
    await budgets.settle(dead, D("0.1"))  # a late settle after the sweep: no double release
    [state] = await budgets.status(model="m")
    assert (state.spent, state.reserved) == (D("0.35"), 0)


async def test_worst_case_needs_a_price_and_an_output_limit() -> None:
    budgets = Budgets([Budget("global", D("1"))])
    worst = budgets.worst_case("openai/gpt-4o", HI, max_tokens=100)
    assert worst == 8 * D("0.0000025") + 100 * D("0.00001")
    assert budgets.worst_case("openai/gpt-4o", HI) == 8 * D("0.0000025") + 16384 * D("0.00001")
    claude = budgets.worst_case("anthropic/claude-sonnet-4-5", HI, max_tokens=10)
    # 8 estimated x 1.2 -> 10 prompt tokens, at the 1-hour cache-write rate (2 x input)
    assert claude == 10 * D("0.000006") + 10 * D("0.000015")
    with pytest.raises(chatgate.InvalidRequestError, match="has no price"):
        await budgets.reserve("vllm/house", HI, max_tokens=10)
    assert Budgets([Budget("global", D("1"))], unpriced="allow").worst_case("vllm/h", HI) == 0
    none_apply = await Budgets([Budget("team", D("1"), subject="x")]).reserve("vllm/h", HI)
    assert none_apply.lines == ()
    with pytest.raises(chatgate.InvalidRequestError, match="alerts"):
        Budget("global", D("1"), alerts=(D("1.5"),))


def test_a_free_model_holds_nothing_even_without_max_tokens() -> None:
    from chatgate.cost.prices import FREE

    budgets = Budgets([Budget("global", Decimal("1"))])
    assert budgets.worst_case("local/smollm2-135m", [{"role": "user", "content": "hi"}],
                              price=FREE) == 0  # fmt: skip
