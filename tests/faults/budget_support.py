"""What the budget fault tests share: the store tests' databases (a fresh one per test, on
SQLite and on a real PostgreSQL server), a two-upstream gateway config (``flaky`` always
answers 500 and falls back to the pricier ``dear``), virtual keys made through the admin API,
concurrent requests, and the key's budget counters read straight from the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from chatgate.store.engine import create_engine
from tests import gateway_harness as harness
from tests.fakes.gateway import Gateway
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json

MASTER = "sk-master-budget-faults"
LIMIT = Decimal("0.01")
PICO = Decimal(10**12)
CHEAP = "0.000000001"  # USD per token: flaky's price
DEAR = "0.000001"  # USD per token: dear's ($1 per million), in and out
MAX_TOKENS = 1000  # per choice: one whole dear answer costs ~$0.001
HI = [{"role": "user", "content": "hi"}]
CALLS = 100  # concurrent requests raced against a budget of LIMIT


@pytest.fixture
def flaky() -> Iterator[FakeOpenAI]:
    """An upstream that answers every request with a 500."""
    with FakeOpenAI() as fake:
        failure = error_json("the server had an error", "server_error")
        fake.script(*[Reply(status=500, json=failure) for _ in range(2000)])
        yield fake


@pytest.fixture
def dear() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def script_full_answers(fake: FakeOpenAI, count: int, *, n: int = 1) -> None:
    """Answers that use the whole output cap of each of ``n`` choices."""
    usage = {"prompt_tokens": 8, "completion_tokens": MAX_TOKENS * n}
    fake.script(*[Reply(json=completion_json("ok", model="dear-model", **usage))] * count)


def priced(name: str, model: str, fake: FakeOpenAI, price: str) -> dict[str, Any]:
    prices = {"input_cost_per_token": price, "output_cost_per_token": price}
    return harness.deployment(name, fake, f"openai/{model}", **prices)


def gateway_config(
    db_url: str, flaky: FakeOpenAI, dear: FakeOpenAI, **general: Any
) -> dict[str, Any]:
    return harness.gateway_config(
        priced("flaky", "flaky-model", flaky, CHEAP),
        priced("dear", "dear-model", dear, DEAR),
        master_key=MASTER,
        database=db_url,
        router={
            "num_retries": 0,
            "cooldown_time": 0,
            "allowed_fails": 100000,
            "fallbacks": [{"flaky": ["dear"]}],
            "timeout": 30,
        },
        key_cache_ttl_s=0,
        **general,
    )


def new_key(gw: Gateway, **fields: Any) -> tuple[str, str]:
    """A virtual key with a lifetime budget of LIMIT: (secret, key id)."""
    made = gw.create_key(**{"budget": str(LIMIT), "budget_period": "lifetime", **fields})
    return made["key"], made["key_id"]


async def post_many(
    url: str,
    key: str,
    bodies: list[dict[str, Any]],
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> list[int]:
    """Send every body at once (with ``headers`` besides the key); the statuses, in order."""
    headers = {"Authorization": f"Bearer {key}", **(headers or {})}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:

        async def one(body: dict[str, Any]) -> int:
            async with session.post(f"{url}{path}", json=body) as resp:
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(one(b) for b in bodies)))


async def counters(db_url: str, key_id: str) -> tuple[Decimal, Decimal]:
    """The key's lifetime budget as the database has it: (spent, reserved) in USD."""
    return await counter(db_url, f"key:{key_id}:lifetime")


async def counter(db_url: str, budget_id: str) -> tuple[Decimal, Decimal]:
    """A budget's counter (any period) as the database has it: (spent, reserved) in USD."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT spent_pico, reserved_pico FROM budget_counters "
                        "WHERE budget_id = :id"
                    ),
                    {"id": budget_id},
                )
            ).first()
    finally:
        await engine.dispose()
    if row is None:
        return Decimal(0), Decimal(0)
    return Decimal(row[0]) / PICO, Decimal(row[1]) / PICO
