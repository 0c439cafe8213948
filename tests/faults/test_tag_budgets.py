"""A tag budget is never overspent: 100 concurrent requests tagged ``feature-x`` against a $0.01
lifetime tag budget, through the library Router (memory budgets, ``spend_tags=``) and through a
real `chatgate serve` (``x-chatgate-tags``) on SQLite and PostgreSQL. A request whose other
tags are unbudgeted is unaffected; a budget the config gets wrong stops the gateway at start,
naming the field; tags a client invents create no budget state."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from chatgate.errors import BudgetExceededError
from chatgate.router import Router
from chatgate.store.engine import create_engine
from chatgate.store.schema.budgets import BUDGET_COUNTERS
from tests.fakes.openai_server import FakeOpenAI
from tests.faults.budget_support import (
    CALLS,
    DEAR,
    HI,
    LIMIT,
    MAX_TOKENS,
    counter,
    gateway_config,
    post_many,
    priced,
    script_full_answers,
)
from tests.gateway_harness import serve

TAG_BUDGET = {"scope": "tag", "subject": "feature-x", "limit": str(LIMIT), "window": "lifetime"}
BUDGET_ID = "tag:feature-x:lifetime"


def body() -> dict[str, Any]:
    return {"model": "dear", "messages": HI, "max_tokens": MAX_TOKENS}


async def test_library_spend_tags_never_overspend_a_tag_budget(dear: FakeOpenAI) -> None:
    script_full_answers(dear, CALLS + 5)
    router = Router([priced("dear", "dear-model", dear, DEAR)], budgets=[TAG_BUDGET])
    budgets = router.guard.budgets
    assert budgets is not None

    async def call(tags: list[str]) -> bool:
        try:
            await router.acompletion("dear", HI, max_tokens=MAX_TOKENS, spend_tags=tags)
        except BudgetExceededError:
            return False
        return True

    served = await asyncio.gather(*(call(["feature-x"]) for _ in range(CALLS)))
    [state] = await budgets.status(tags=["feature-x"])
    assert 0 < state.spent <= LIMIT
    assert state.reserved == 0
    assert sum(served) >= 9  # ~$0.001 each: the budget was used, not refused at once
    assert not await call(["other", "feature-x"])  # spent: refused whatever else it carries
    assert await call(["other"])  # an unbudgeted tag is not held at all
    assert await call([])
    [after] = await budgets.status(tags=["feature-x"])
    assert after.spent == state.spent


def test_gateway_never_overspends_a_tag_budget(
    db_url: str, flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path
) -> None:
    script_full_answers(dear, CALLS + 10)
    config = gateway_config(db_url, flaky, dear, budgets=[TAG_BUDGET])
    with serve(config, tmp_path) as gw:
        key = gw.create_key()["key"]
        tagged = {"x-chatgate-tags": "feature-x"}
        statuses = asyncio.run(post_many(gw.url, key, [body()] * CALLS, headers=tagged))
        assert set(statuses) <= {200, 402}
        assert statuses.count(200) >= 9
        spent, reserved = asyncio.run(counter(db_url, BUDGET_ID))
        assert 0 < spent <= LIMIT
        assert reserved == 0
        # 9 answers of ~$0.001 crossed the default 80% alert, once
        assert gw.log_text().count(f"budget {BUDGET_ID}: 80% of $0.01 used") == 1
        # the tag among others still holds; other tags alone are not held
        both = {"x-chatgate-tags": "other, feature-x"}
        assert asyncio.run(post_many(gw.url, key, [body()], headers=both)) == [402]
        other = {"x-chatgate-tags": "other"}
        assert asyncio.run(post_many(gw.url, key, [body()] * 3, headers=other)) == [200] * 3
        assert asyncio.run(counter(db_url, BUDGET_ID)) == (spent, 0)
        status, listed = gw.admin("GET", "/admin/budgets")
        assert status == 200
        [row] = [r for r in listed["data"] if r["budget_id"] == BUDGET_ID]
        assert (row["scope"], row["subject"], Decimal(row["spent"])) == ("tag", "feature-x", spent)


def test_ten_thousand_invented_tags_create_no_budget_rows(
    db_url: str, flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path
) -> None:
    requests = 625  # x 16 distinct tags = 10,000 (the gateway keeps 16, each cut to 64 chars)
    script_full_answers(dear, requests)
    config = gateway_config(db_url, flaky, dear, budgets=[TAG_BUDGET])
    with serve(config, tmp_path) as gw:
        key = gw.create_key()["key"]
        tags = [",".join(f"t{n}-{i}-{'z' * 100}" for i in range(20)) for n in range(requests)]
        statuses = asyncio.run(post_tagged(gw.url, key, tags))
        assert statuses == [200] * requests
        status, listed = gw.admin("GET", "/admin/budgets")
        assert status == 200
        assert [r["budget_id"] for r in listed["data"]] == [BUDGET_ID]
        assert asyncio.run(counter_ids(db_url)) == []


async def post_tagged(url: str, key: str, tags: list[str]) -> list[int]:
    """One request per x-chatgate-tags value, 25 at a time; the statuses, in order."""
    statuses: list[int] = []
    for start in range(0, len(tags), 25):
        sent = [
            post_many(url, key, [body()], headers={"x-chatgate-tags": t})
            for t in tags[start : start + 25]
        ]
        statuses += [status for [status] in await asyncio.gather(*sent)]
    return statuses


async def counter_ids(db_url: str) -> list[str]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(BUDGET_COUNTERS.c.budget_id))).scalars())
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({"scope": "tag", "limit": 1}, "general_settings.budgets.0.subject"),
        ({"scope": "tag", "subject": "*", "limit": 1}, "general_settings.budgets.0.subject"),
        ({"scope": "tags", "subject": "x", "limit": 1}, "general_settings.budgets.0.scope"),
        ({"scope": "tag", "subject": "x", "limit": -1}, "general_settings.budgets.0.limit"),
    ],
)
def test_a_malformed_tag_budget_stops_the_gateway_naming_the_field(
    budget: dict[str, Any], field: str, tmp_path: Path, dear: FakeOpenAI
) -> None:
    config = gateway_config("sqlite:///gateway.db", dear, dear, budgets=[budget])
    with pytest.raises(RuntimeError, match="gateway exited") as failed, serve(config, tmp_path):
        pass
    assert field in str(failed.value)
