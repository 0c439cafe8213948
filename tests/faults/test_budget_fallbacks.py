"""Fallbacks never bypass a key, and a budget hold covers every group a call may reach.

A key allowed only ``flaky`` (always 500, falls back to the pricier ``dear``) must never be
served by ``dear``; a key allowed both must be held ``dear``'s worst case. 100 concurrent
requests against a $0.01 lifetime budget: on memory budgets through the library Router, and
through a real `chatgate serve` on SQLite and PostgreSQL budgets."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from chatgate.cost.budget_backends import MemoryBudgetBackend
from chatgate.cost.budgets import Budget, Budgets
from chatgate.errors import BudgetExceededError, ChatgateError
from chatgate.router import Router
from chatgate.router.budgeting import routed_worst_case
from chatgate.router.fallbacks import NOT_ALLOWED
from chatgate.types import ChatRequest
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json
from tests.faults.budget_support import (
    CALLS,
    CHEAP,
    DEAR,
    HI,
    LIMIT,
    MAX_TOKENS,
    counters,
    gateway_config,
    new_key,
    post_many,
    priced,
    script_full_answers,
)
from tests.gateway_harness import serve


def body(model: str = "flaky") -> dict[str, object]:
    return {"model": model, "messages": HI, "max_tokens": MAX_TOKENS}


# -- the router: a fallback the caller may not use is skipped and logged ----------------------


def router_for(flaky: FakeOpenAI, dear: FakeOpenAI, **settings: object) -> Router:
    return Router(
        [
            priced("flaky", "flaky-model", flaky, CHEAP),
            priced("dear", "dear-model", dear, DEAR),
        ],
        num_retries=0,
        cooldown_time=0,
        allowed_fails=100000,
        **settings,  # type: ignore[arg-type]
    )


def request() -> ChatRequest:
    return ChatRequest.model_validate(body())


@pytest.mark.parametrize(
    ("kind", "failure"),
    [
        ("fallbacks", Reply(status=500, json=error_json("boom", "server_error"))),
        (
            "context_window_fallbacks",
            Reply(
                status=400,
                json=error_json(
                    "This model's maximum context length is 8 tokens",
                    "invalid_request_error",
                    "context_length_exceeded",
                    "messages",
                ),
            ),
        ),
        (
            "content_policy_fallbacks",
            Reply(
                status=400,
                json=error_json(
                    "rejected by the safety system",
                    "invalid_request_error",
                    "content_policy_violation",
                ),
            ),
        ),
    ],
)
async def test_a_fallback_of_any_kind_to_a_group_not_allowed_is_skipped_and_logged(
    flaky: FakeOpenAI, dear: FakeOpenAI, kind: str, failure: Reply
) -> None:
    flaky.replies.clear()
    flaky.script(failure)
    router = router_for(flaky, dear, **{kind: [{"flaky": ["dear"]}]})
    with pytest.raises(ChatgateError) as failed:
        await router.aroute(request(), allowed={"flaky"}.__contains__)
    assert dear.requests == []
    tried, skipped = failed.value.attempt_log
    assert tried.deployment.startswith("flaky")
    assert tried.skipped is None
    assert (skipped.deployment, skipped.skipped) == ("dear", NOT_ALLOWED)
    # the same call with the group allowed goes on to it
    flaky.script(failure)
    answer = await router.aroute(request(), allowed={"flaky", "dear"}.__contains__)
    assert answer.meta.deployment is not None
    assert answer.meta.deployment.startswith("dear")
    assert answer.meta.attempts == 2


async def test_a_skipped_fallback_is_not_counted_as_an_attempt(
    flaky: FakeOpenAI, dear: FakeOpenAI
) -> None:
    with FakeOpenAI() as third:
        router = Router(
            [
                priced("flaky", "flaky-model", flaky, CHEAP),
                priced("dear", "dear-model", dear, DEAR),
                priced("spare", "spare-model", third, CHEAP),
            ],
            num_retries=0,
            cooldown_time=0,
            fallbacks=[{"flaky": ["dear", "spare"]}],
        )
        answer = await router.aroute(request(), allowed={"flaky", "spare"}.__contains__)
    assert answer.meta.model_name == "spare"
    assert [a.skipped is not None for a in answer.meta.attempt_log] == [False, True, False]
    assert answer.meta.attempts == 2
    assert dear.requests == []


# -- the race, on memory budgets through the library ----------------------------------------


async def race_through_the_library(
    flaky: FakeOpenAI, dear: FakeOpenAI, allowed: set[str]
) -> tuple[Decimal, Decimal]:
    """CALLS concurrent routed calls, each held its worst case over the groups it may reach
    and settled with its cost: (spent, reserved) afterwards."""
    router = router_for(flaky, dear, fallbacks=[{"flaky": ["dear"]}])
    budgets = Budgets([Budget("key", LIMIT, "lifetime")], backend=MemoryBudgetBackend())

    async def call() -> None:
        req = request()
        amount = routed_worst_case(router, budgets, req, allowed.__contains__)
        try:
            hold = await budgets.reserve_amount(amount, model=req.model, key="k")
        except BudgetExceededError:
            return
        try:
            answer = await router.aroute(req, allowed=allowed.__contains__)
        except ChatgateError:
            await budgets.release(hold)
            return
        await budgets.settle(hold, answer.meta.cost)

    await asyncio.gather(*(call() for _ in range(CALLS)))
    (state,) = await budgets.status(key="k")
    return state.spent, state.reserved


async def test_memory_budget_a_key_never_reaches_a_fallback_it_may_not_use(
    flaky: FakeOpenAI, dear: FakeOpenAI
) -> None:
    script_full_answers(dear, CALLS)
    spent, reserved = await race_through_the_library(flaky, dear, {"flaky"})
    assert dear.requests == []
    assert (spent, reserved) == (0, 0)


async def test_memory_budget_holds_the_dearest_group_the_call_may_reach(
    flaky: FakeOpenAI, dear: FakeOpenAI
) -> None:
    script_full_answers(dear, CALLS)
    spent, reserved = await race_through_the_library(flaky, dear, {"flaky", "dear"})
    assert reserved == 0
    assert 0 < spent <= LIMIT
    assert len(dear.requests) >= 9  # ~$0.001 each: the budget was used, not refused at once


# -- the race, through a real gateway on SQLite and PostgreSQL -------------------------------


def test_gateway_a_key_never_reaches_a_fallback_it_may_not_use(
    db_url: str, flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path
) -> None:
    script_full_answers(dear, CALLS)
    with serve(gateway_config(db_url, flaky, dear), tmp_path) as gw:
        secret, key_id = new_key(gw, models=["flaky"])
        statuses = asyncio.run(post_many(gw.url, secret, [body()] * CALLS))
        embedding = {"model": "flaky", "input": "hi"}
        statuses += asyncio.run(post_many(gw.url, secret, [embedding], "/v1/embeddings"))
        spent, reserved = asyncio.run(counters(db_url, key_id))
    assert dear.requests == []
    assert set(statuses) == {500}
    assert (spent, reserved) == (0, 0)


def test_gateway_holds_the_dearest_group_the_key_may_reach(
    db_url: str, flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path
) -> None:
    script_full_answers(dear, CALLS)
    with serve(gateway_config(db_url, flaky, dear), tmp_path) as gw:
        secret, key_id = new_key(gw, models=["flaky", "dear"])
        statuses = asyncio.run(post_many(gw.url, secret, [body()] * CALLS))
        spent, reserved = asyncio.run(counters(db_url, key_id))
    assert set(statuses) <= {200, 402}
    assert 200 in statuses
    assert 402 in statuses
    assert reserved == 0
    assert spent <= LIMIT
    assert spent == statuses.count(200) * (8 + MAX_TOKENS) * Decimal(DEAR)
