"""Tag budgets (``scope: tag``) on the memory backend and on real SQLite and PostgreSQL: a call
is held on the budget of each of its tags that has one, alerts fire as for any budget, and a
tag nobody configured creates no state, however many distinct tags callers invent."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import func, select

import chatgate
from chatgate.cost.budget_backends import BudgetBackend
from chatgate.cost.budget_tags import spend_tags
from chatgate.cost.budgets import Budget, BudgetAlert, Budgets
from chatgate.cost.budgets_sql import SqlBudgetBackend
from chatgate.errors import InvalidRequestError
from chatgate.store.engine import create_engine
from chatgate.store.schema.budgets import BUDGET_COUNTERS
from tests.store.test_budgets import backend_factory, store_url

__all__ = ["backend_factory", "store_url"]  # fixtures, used by name

D = Decimal


def tag_budgets(backend: BudgetBackend, **kw: object) -> Budgets:
    return Budgets(
        [
            Budget("tag", D("1"), "daily", subject="feature-x", alerts=(D("0.5"),)),
            Budget("tag", D("2"), "lifetime", subject="feature-y"),
        ],
        backend=backend,
        **kw,  # type: ignore[arg-type]
    )


async def test_each_budgeted_tag_of_a_call_holds_and_settles(
    backend_factory: Callable[[], BudgetBackend],
) -> None:
    budgets = tag_budgets(backend_factory())
    both = ("feature-y", "unbudgeted", "feature-x")
    hold = await budgets.reserve_amount(D("0.6"), model="m", tags=both)
    assert [x.budget_id for x in hold.lines] == ["tag:feature-x:daily", "tag:feature-y:lifetime"]
    held = {s.budget_id: s.reserved for s in await budgets.status(tags=both)}
    assert held == {"tag:feature-x:daily": D("0.6"), "tag:feature-y:lifetime": D("0.6")}
    await budgets.settle(hold, D("0.5"))
    states = {s.budget_id: (s.spent, s.reserved) for s in await budgets.status(tags=both)}
    assert states == {"tag:feature-x:daily": (D("0.5"), 0), "tag:feature-y:lifetime": (D("0.5"), 0)}
    # feature-x has $0.5 left: a call tagged with it is refused, with feature-y's room untouched
    with pytest.raises(chatgate.BudgetExceededError) as refused:
        await budgets.reserve_amount(D("0.6"), model="m", tags=("feature-x", "feature-y"))
    assert refused.value.budget == "tag:feature-x:daily"
    [y] = await budgets.status(tags=("feature-y",))
    assert (y.spent, y.reserved) == (D("0.5"), 0)
    # a call whose only tags are unbudgeted, or no tags at all, is held on nothing
    for tags in (("unbudgeted",), ()):
        free = await budgets.reserve_amount(D("100"), model="m", tags=tags)
        assert free.lines == ()


async def test_a_tag_budget_alerts_at_its_thresholds(
    backend_factory: Callable[[], BudgetBackend], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[BudgetAlert] = []
    budgets = tag_budgets(backend_factory(), on_alert=seen.append)
    with caplog.at_level(logging.WARNING, logger="chatgate.budget"):
        for amount in ("0.3", "0.3", "0.3"):
            hold = await budgets.reserve_amount(D(amount), model="m", tags=("feature-x",))
            await budgets.settle(hold, D(amount))
    assert [(a.budget_id, a.threshold, a.spent) for a in seen] == [
        ("tag:feature-x:daily", D("0.5"), D("0.6"))
    ]
    assert caplog.records[0].getMessage().startswith("budget tag:feature-x:daily: 50% of $1")


async def test_ten_thousand_distinct_tags_create_no_budget_state(db_url: str) -> None:
    backend = await SqlBudgetBackend.open(db_url)
    budgets = tag_budgets(backend)
    try:
        for n in range(10_000):
            tags = (f"t-{n}-{uuid.uuid4().hex}", "feature-x") if n == 0 else (f"t-{n}",)
            hold = await budgets.reserve_amount(D("0.000001"), model="m", tags=tags)
            await budgets.settle(hold, D("0.000001"))
    finally:
        await backend.aclose()
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            ids = (await conn.execute(select(BUDGET_COUNTERS.c.budget_id))).scalars().all()
            rows = (await conn.execute(select(func.count()).select_from(BUDGET_COUNTERS))).scalar()
    finally:
        await engine.dispose()
    assert (rows, ids) == (1, ["tag:feature-x:daily"])


@pytest.mark.parametrize("subject", ["*", "", " feature-x", "a,b", "x" * 65])
def test_a_tag_budget_names_one_tag_a_client_can_send(subject: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        Budget("tag", D("1"), subject=subject)
    assert refused.value.param == "subject"


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("feature-x", "list of tags"),
        ([f"t{n}" for n in range(17)], "at most 16"),
        (["x" * 65], "1 to 64"),
        ([""], "1 to 64"),
        ([3], "1 to 64"),
    ],
)
def test_spend_tags_are_bounded_in_count_and_length(given: object, why: str) -> None:
    with pytest.raises(InvalidRequestError, match=why) as refused:
        spend_tags(given)
    assert refused.value.param == "spend_tags"
    assert spend_tags(None) == ()
    assert spend_tags([f"t{n}" for n in range(16)])[-1] == "t15"
