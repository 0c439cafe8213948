"""Before a run: the Router that will serve it, every model checked, and with a cost cap the
most each request can cost (the amount held against the cap while it is in flight)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from chatgate.batching.input import BatchItem
from chatgate.batching.route_tags import carrying, untagged_problem
from chatgate.config import ConfigError
from chatgate.cost.budgets import Budget, Budgets, Reservation
from chatgate.cost.calc import price_of
from chatgate.errors import BudgetExceededError, InvalidRequestError
from chatgate.router import Router
from chatgate.router.deployments import RoutedDeployment

__all__ = ["CostCap", "check_items", "router_for"]


def router_for(items: Sequence[BatchItem], problems: list[str]) -> Router | None:
    """Without a config, each provider/model string is its own model group, so plain model
    strings get the Router's retries too. Unresolvable models become problems."""
    entries: dict[str, int] = {}
    for item in items:
        entries.setdefault(item.request.model, item.line)
    good = []
    for model, line in entries.items():
        try:
            Router([{"model_name": model, "params": {"model": model}}])
        except InvalidRequestError as exc:
            problems.append(f"line {line}: body.model {model!r}: {exc.message}")
            continue
        good.append({"model_name": model, "params": {"model": model}})
    return Router(good) if len(good) == len(entries) else None


def _reachable(router: Router, name: str) -> list[RoutedDeployment]:
    """Every deployment that may answer a call to ``name``: its group and, transitively, the
    groups it falls back to (plain, context-window and content-policy fallbacks)."""
    s = router.settings
    tables = [*s.fallbacks, *s.context_window_fallbacks, *s.content_policy_fallbacks]
    seen, todo = {name}, [name]
    while todo:
        current = todo.pop()
        for table in tables:
            for target in table.get(current, []):
                if target not in seen and target in router.groups:
                    seen.add(target)
                    todo.append(target)
    return [d for group in sorted(seen) for d in router.groups[group]]


class CostCap:
    """A lifetime budget of ``limit`` USD for one run: the worst case of each request is held
    before it is sent and replaced by its actual cost when it ends (chatgate.cost.budgets)."""

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit
        self.budgets = Budgets([Budget("global", limit, "lifetime", alerts=())])
        self.worst: dict[str, Decimal] = {}  # custom_id -> amount to hold

    def price(self, router: Router, item: BatchItem) -> None:
        """Work out the request's worst case over every deployment that may serve it."""
        request = item.request
        n = request.n or 1
        amounts = []
        for routed in _reachable(router, request.model):
            price = price_of(routed.deployment)
            limit = request.output_limit() or (price.max_output if price else None)
            amounts.append(
                self.budgets.worst_case(
                    routed.model,
                    request.messages,
                    tools=request.tools,
                    max_tokens=limit * n if limit else None,
                    price=price,
                )
            )
        self.worst[item.custom_id] = max(amounts)

    async def hold(self, item: BatchItem) -> Reservation | None:
        """The hold for ``item``, or None when what is left cannot cover its worst case."""
        try:
            return await self.budgets.reserve_amount(self.worst[item.custom_id], model="batch")
        except BudgetExceededError:
            return None

    async def settle(self, hold: Reservation, cost: Decimal | None) -> None:
        await self.budgets.settle(hold, cost)


def check_items(
    router: Router,
    items: Sequence[BatchItem],
    cap: CostCap | None,
    tags: frozenset[str] = frozenset(),
) -> list[str]:
    """Problems with line numbers: models the router does not serve, or has no deployment
    carrying every one of ``tags`` for, requests that cannot be priced under a cost cap."""
    problems = []
    names = ", ".join(router.model_names)
    for item in items:
        model = item.request.model
        if model not in router.groups:
            problems.append(
                f"line {item.line}: body.model {model!r} is not served; serving: {names}"
            )
        elif not carrying(router.groups[model], tags):
            problems.append(f"line {item.line}: {untagged_problem(model, tags)}")
        elif cap is not None:
            try:
                cap.price(router, item)
            except (InvalidRequestError, ConfigError) as exc:
                problems.append(f"line {item.line}: with a cost cap: {exc.message}")
    return problems
