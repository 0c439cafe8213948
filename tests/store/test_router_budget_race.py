"""``Router(budgets=...)`` is never overspent by concurrent library calls: 50 at once against
a budget that covers five, on the memory backend and on real SQLite and PostgreSQL, with two
Routers (as two processes would be) sharing the store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import chatgate
from chatgate.cost.budget_backends import BudgetBackend
from chatgate.cost.budgets import Budget, Budgets
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json
from tests.store.test_budgets import backend_factory, store_url

D = Decimal
HI = [{"role": "user", "content": "hi"}]
LIMIT = D("0.0003")
MAX_TOKENS = 50  # at $1/M: an answer using it all costs $0.00005 plus the prompt


__all__ = ["backend_factory", "store_url"]  # fixtures, used by name


async def test_50_concurrent_router_calls_never_overspend(
    backend_factory: Callable[[], BudgetBackend], fake: FakeOpenAI
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
            budgets=Budgets([Budget("user", LIMIT, "daily")], backend=backend_factory()),
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
