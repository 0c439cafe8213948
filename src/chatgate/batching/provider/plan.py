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
from chatgate.cost.budgets import Budgets
from chatgate.cost.calc import price_of
from chatgate.errors import InvalidRequestError
from chatgate.providers.base import Deployment
from chatgate.providers.registry import resolve_deployment
from chatgate.router import Router

__all__ = ["APIS", "Planned", "plan_items"]

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


def _deployment(item: BatchItem, router: Router | None) -> Deployment:
    model = item.request.model
    if router is None:
        return resolve_deployment(model)
    group = router.groups.get(model)
    if not group:
        names = ", ".join(router.model_names)
        raise InvalidRequestError(f"body.model {model!r} is not served; serving: {names}")
    for routed in group:
        if routed.deployment.provider in APIS:
            return routed.deployment
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


def plan_one(item: BatchItem, router: Router | None, budgets: Budgets | None) -> Planned:
    deployment = _deployment(item, router)
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
    items: Sequence[BatchItem], router: Router | None, capped: bool
) -> tuple[list[Planned], list[str]]:
    """Every line planned, and the problems found as ``line N: what and the fix``."""
    budgets = Budgets([]) if capped else None
    planned, problems = [], []
    for item in items:
        try:
            planned.append(plan_one(item, router, budgets))
        except InvalidRequestError as exc:
            problems.append(f"line {item.line}: {exc.message}")
    return planned, problems
