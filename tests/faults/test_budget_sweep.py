"""Expired holds, released safely: several processes sweeping at once release each hold once
(never a negative reservation), a late settle after a sweep releases nothing twice, and a
process that lives renews its holds past the TTL while a dead one's are released. Budget
objects on separate engines stand for separate processes, over real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from chatgate.cost.budget_backends import BudgetBackend
from chatgate.cost.budgets import Budget, Budgets
from tests.store.conftest import pg_url, postgres, sqlite_url
from tests.store.test_budgets import HI, Clock, backend_factory, store_url

__all__ = ["backend_factory", "pg_url", "postgres", "sqlite_url", "store_url"]  # fixtures

D = Decimal
TTL_S = 10.0
PROCESSES = 4
HOLDS = 40


def budgets_over(
    factory: Callable[[], BudgetBackend], clock: Clock, count: int = PROCESSES
) -> list[Budgets]:
    return [
        Budgets(
            [Budget("global", D("1"), "lifetime")],
            backend=factory(),
            clock=clock,
            reservation_ttl_s=TTL_S,
        )
        for _ in range(count)
    ]


async def test_processes_sweeping_at_once_release_each_expired_hold_once(
    backend_factory: Callable[[], BudgetBackend],
) -> None:
    clock = Clock()
    processes = budgets_over(backend_factory, clock)
    holds = await asyncio.gather(
        *(
            processes[i % PROCESSES].reserve("openai/gpt-4o", HI, max_tokens=100)
            for i in range(HOLDS)
        )
    )
    (before,) = await processes[0].status()
    assert before.reserved == sum(h.amount_usd for h in holds)
    clock.now += TTL_S + 1  # every holder died
    released = 0
    for _ in range(3):  # rounds of every process sweeping at the same moment
        released += sum(await asyncio.gather(*(p.sweep_expired() for p in processes)))
    assert released == HOLDS
    (after,) = await processes[0].status()
    assert (after.reserved, after.spent) == (0, 0)
    await processes[1].settle(holds[0], D("0.001"))  # a late settle: spends, releases nothing
    (late,) = await processes[0].status()
    assert (late.reserved, late.spent) == (0, D("0.001"))


async def test_a_live_process_renews_its_holds_and_a_dead_ones_are_released(
    backend_factory: Callable[[], BudgetBackend], store_url: str | None
) -> None:
    clock = Clock()
    if store_url is None:  # one process: every hold is its own, and renewed while unsettled
        live, dead = budgets_over(backend_factory, clock, 1) * 2
    else:
        live, dead = budgets_over(backend_factory, clock, 2)
    mine = await live.reserve("openai/gpt-4o", HI, max_tokens=100)
    theirs = await dead.reserve("openai/gpt-4o", HI, max_tokens=100)
    step = live.maintain_every_s
    assert step == TTL_S / 4
    for _ in range(12):  # three TTLs; only the live process maintains
        clock.now += step
        await live.maintain()
    (state,) = await live.status()
    if store_url is None:
        assert state.reserved == mine.amount_usd + theirs.amount_usd
        return
    assert state.reserved == mine.amount_usd
    await live.settle(mine, D("0.002"))
    (settled,) = await live.status()
    assert (settled.reserved, settled.spent) == (0, D("0.002"))


async def test_renewing_and_sweeping_in_several_processes_at_once(
    backend_factory: Callable[[], BudgetBackend],
) -> None:
    clock = Clock()
    processes = budgets_over(backend_factory, clock)
    for i in range(HOLDS):
        await processes[i % PROCESSES].reserve("openai/gpt-4o", HI, max_tokens=100)
    clock.now += TTL_S * 0.6  # past half the TTL: every process renews its own
    results = await asyncio.gather(*(p.maintain() for p in processes))
    assert sum(renewed for renewed, _ in results) == HOLDS
    assert sum(released for _, released in results) == 0
    clock.now += TTL_S * 0.6  # past the first expiry, not the renewed one
    assert sum(await asyncio.gather(*(p.sweep_expired() for p in processes))) == 0
    (state,) = await processes[0].status()
    assert state.reserved > 0
