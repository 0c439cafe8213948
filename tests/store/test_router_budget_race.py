"""``Router(budgets=...)`` is never overspent by concurrent library calls: 50 at once against
a budget that covers five, on the memory backend and on real SQLite and PostgreSQL, with two
Routers (as two processes would be) sharing the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

import chatgate
from chatgate.cost.budget_backends import BudgetBackend, MemoryBudgetBackend
from chatgate.cost.budgets import Budget, Budgets
from chatgate.cost.budgets_sql import SqlBudgetBackend
from chatgate.store.engine import create_engine
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json

D = Decimal
HI = [{"role": "user", "content": "hi"}]
LIMIT = D("0.0003")
MAX_TOKENS = 50  # at $1/M: an answer using it all costs $0.00005 plus the prompt


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
async def backends(store_url: str | None) -> AsyncIterator[Callable[[], BudgetBackend]]:
    """Backends over one store; each SQL one with its own engine, as a process would."""
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


async def test_50_concurrent_router_calls_never_overspend(
    backends: Callable[[], BudgetBackend], fake: FakeOpenAI
) -> None:
    whole = completion_json("ok", model="gpt-4o", prompt_tokens=9, completion_tokens=MAX_TOKENS)
    fake.script(*[Reply(json=whole, delay_s=0.05) for _ in range(50)])
    params = {
        "model": "openai/gpt-4o",
        "api_base": fake.base_url,
        "api_key": "sk-upstream-race",
        "input_cost_per_token": "0.000001",
        "output_cost_per_token": "0.000001",
    }
    routers = [
        chatgate.Router(
            [{"model_name": "smart", "params": params}],
            budgets=Budgets([Budget("user", LIMIT, "daily")], backend=backends()),
        )
        for _ in range(2)
    ]
    costs: list[Decimal] = []
    refused: list[chatgate.BudgetExceededError] = []

    async def call(n: int) -> None:
        try:
            answer = await routers[n % 2].acompletion("smart", HI, max_tokens=MAX_TOKENS, user="u")
        except chatgate.BudgetExceededError as exc:
            refused.append(exc)
            return
        assert answer.cost is not None
        costs.append(answer.cost)

    await asyncio.gather(*(call(n) for n in range(50)))
    budgets = routers[0].budgets
    assert budgets is not None
    [state] = await budgets.status(model="smart", user="u")
    assert state.spent == sum(costs)
    assert state.spent <= LIMIT
    assert state.reserved == 0
    assert 1 <= len(costs) <= 5  # each answer costs $0.000059: five fit, no more
    assert len(refused) == 50 - len(costs)
    assert len(fake.requests) == len(costs)  # a refused call never reached the upstream
    assert all(e.budget == "user:u:daily" for e in refused)
