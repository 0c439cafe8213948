"""What the Router cache and budget tests share: a priced deployment on a fake upstream, a
one-group Router, and counts of what the upstream received and what the budgets hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import chatgate
from chatgate.cost.budgets import Budgets
from tests.fakes.openai_server import FakeOpenAI

D = Decimal
HI = [{"role": "user", "content": "hello router"}]
PRICE = "0.000001"  # USD per token, in and out: 100 output tokens cost $0.0001
DEAR = "0.00001"


def entry(name: str, fake: FakeOpenAI, price: str = PRICE, model: str = "gpt-4o") -> Any:
    return {
        "model_name": name,
        "params": {
            "model": f"openai/{model}",
            "api_base": fake.base_url,
            "api_key": "sk-upstream-guarded",
            "input_cost_per_token": price,
            "output_cost_per_token": price,
        },
    }


def router(fake: FakeOpenAI, **kw: Any) -> chatgate.Router:
    kw.setdefault("num_retries", 0)
    return chatgate.Router([entry("smart", fake)], **kw)


def chats(fake: FakeOpenAI) -> int:
    return sum(r.path.endswith("/chat/completions") for r in fake.requests)


async def spent(budgets: Budgets | None, **who: Any) -> tuple[Decimal, Decimal]:
    assert budgets is not None
    states = await budgets.status(model="smart", **who)
    return sum((s.spent for s in states), D(0)), sum((s.reserved for s in states), D(0))


def embeds(fake: FakeOpenAI) -> int:
    return sum(r.path.endswith("/embeddings") for r in fake.requests)
