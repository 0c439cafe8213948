"""Before a provider batch is submitted: every line resolved to a deployment with a batch API,
built into its wire form by the adapter (so a bad request is refused now, with its line
number), and under a cost cap priced at its worst case at the batch rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from chatgate.batching.input import BatchItem
from chatgate.batching.provider.anthropic import AnthropicBatches
from chatgate.batching.provider.api import BatchAPI
from chatgate.batching.provider.gemini import GeminiBatches
from chatgate.batching.provider.openai import OpenAIBatches
from chatgate.batching.route_tags import carrying, untagged_problem
from chatgate.cost.budgets import Budgets
from chatgate.cost.calc import price_of
from chatgate.errors import InvalidRequestError
from chatgate.providers.base import Deployment
from chatgate.providers.registry import resolve_deployment
from chatgate.router import Router
from chatgate.router.deployments import RoutedDeployment

__all__ = ["APIS", "Planned", "batch_deployment", "plan_items", "plan_one"]

APIS: dict[str, BatchAPI] = {
    "openai": OpenAIBatches(),
    "anthropic": AnthropicBatches(),
    "gemini": GeminiBatches(),
}


@dataclass(frozen=True, slots=True)
class Planned:
    item: BatchItem
    api: BatchAPI
    deployment: Deployment
    wire_id: str
    line: bytes  # the request as the provider's batch takes it
    worst: Decimal  # the most it can cost at the batch rate (0 without a cap)


def batch_deployment(
    group: Sequence[RoutedDeployment], tags: frozenset[str]
) -> RoutedDeployment | None:
    """The deployment of ``group`` a provider batch goes to: the first with a batch API among
    those carrying every one of ``tags`` (route_tags.carrying); None when there is none."""
    return next((d for d in carrying(group, tags) if d.deployment.provider in APIS), None)


def _deployment(item: BatchItem, router: Router | None, tags: frozenset[str]) -> Deployment:
    model = item.request.model
    if router is None:
        return resolve_deployment(model)  # a group of its own, with no tags: any tags serve
    group = router.groups.get(model)
    if not group:
        names = ", ".join(router.model_names)
        raise InvalidRequestError(f"body.model {model!r} is not served; serving: {names}")
    if not carrying(group, tags):
        raise InvalidRequestError(untagged_problem(model, tags))
    chosen = batch_deployment(group, tags)
    if chosen is not None:
        return chosen.deployment
    if tags and batch_deployment(group, frozenset()) is not None:
        names = ", ".join(sorted(tags))
        raise InvalidRequestError(
            f"body.model {model!r}: no deployment of it with a batch API carries every "
            f"requested tag ({names}); run it without --provider-batch, where the tagged "
            "deployments answer it"
        )
    providers = ", ".join(sorted({r.deployment.provider for r in group}))
    raise InvalidRequestError(
        f"body.model {model!r} is served by {providers}, which has no batch API here "
        f"(--provider-batch supports {', '.join(APIS)}); run it without --provider-batch"
    )


def _worst(item: BatchItem, deployment: Deployment, budgets: Budgets) -> Decimal:
    request = item.request
    price = price_of(deployment)
    limit = request.output_limit() or (price.max_output if price else None)
    name = f"{deployment.provider}/{deployment.model}"
    full = budgets.worst_case(
        name,
        request.messages,
        tools=request.tools,
        max_tokens=limit * (request.n or 1) if limit else None,
        price=price,
    )
    discount = price.batch_discount if price is not None else None
    return full if discount is None else full * discount


def plan_one(
    item: BatchItem,
    router: Router | None,
    budgets: Budgets | None,
    tags: frozenset[str] = frozenset(),
) -> Planned:
    """``tags``: the batch's routing tags (route_tags)."""
    deployment = _deployment(item, router, tags)
    api = APIS.get(deployment.provider)
    if api is None:
        raise InvalidRequestError(
            f"body.model {item.request.model!r}: provider {deployment.provider!r} has no batch "
            f"API here (--provider-batch supports {', '.join(APIS)}); run it without "
            "--provider-batch"
        )
    wire_id = api.wire_id(item.custom_id, item.line)
    line = api.line(wire_id, item.request, deployment)
    worst = _worst(item, deployment, budgets) if budgets is not None else Decimal(0)
    return Planned(item, api, deployment, wire_id, line, worst)


def plan_items(
    items: Sequence[BatchItem],
    router: Router | None,
    capped: bool,
    tags: frozenset[str] = frozenset(),
) -> tuple[list[Planned], list[str]]:
    """Every line planned, and the problems found as ``line N: what and the fix``."""
    budgets = Budgets([]) if capped else None
    planned, problems = [], []
    for item in items:
        try:
            planned.append(plan_one(item, router, budgets, tags))
        except InvalidRequestError as exc:
            problems.append(f"line {item.line}: {exc.message}")
    return planned, problems
