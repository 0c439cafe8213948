"""The most a routed call can cost: what a budget hold must cover before the router picks a
deployment. A call may be served by any deployment of any group it can reach (its fallbacks of
every kind, those the caller may use), and ``n`` choices may each use the whole output cap."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from chatgate.cost.calc import price_of
from chatgate.cost.tokens import count_tokens
from chatgate.embedding_types import EmbeddingInput, EmbeddingRequest
from chatgate.router.fallbacks import Allowed

if TYPE_CHECKING:
    from chatgate.cost.budgets import Budgets
    from chatgate.router.router import Router
    from chatgate.types import ChatRequest

__all__ = ["embedding_input_tokens", "embedding_worst_case", "routed_worst_case"]


def routed_worst_case(
    router: Router, budgets: Budgets, request: ChatRequest, allowed: Allowed | None = None
) -> Decimal:
    """The worst case of ``request`` (its ``model`` a model_list name) over every deployment
    of every group in ``router.reachable(request.model, allowed)``; pass the same ``allowed``
    to ``router.aroute``. Raises as ``Budgets.worst_case`` does for a deployment with no
    price or no known output limit: a hold that cannot be bounded is not taken.

    A tiered name whose answers may escalate (``escalate_on``) pays for every tier it goes
    through, each at most once: the sum of the tiers' worst cases."""
    tiered = router.tiered.get(request.model)
    if tiered is None or not tiered.settings.escalate_on:
        return _dearest(router, budgets, request, router.reachable(request.model, allowed))
    return sum(
        (
            _dearest(router, budgets, request, router.reachable(tier, allowed))
            for tier in tiered.tiers
        ),
        Decimal(0),
    )


def _dearest(router: Router, budgets: Budgets, request: ChatRequest, groups: list[str]) -> Decimal:
    return max(
        budgets.worst_case(
            routed.model,
            request.messages,
            tools=request.tools,
            max_tokens=request.output_limit(),
            price=price_of(routed.deployment),
            n=request.n or 1,
        )
        for group in groups
        for routed in router.groups[group]
    )


def embedding_worst_case(
    router: Router,
    request: EmbeddingRequest,
    allowed: Allowed | None = None,
    tokens: int | None = None,
) -> Decimal | None:
    """The most an embeddings call can cost: its input at the dearest input price of the
    deployments that may serve it, fallbacks included (it picks later); None when none has a
    price. ``tokens``: the input's count, if the caller has it already."""
    reachable = [d for g in router.reachable(request.model, allowed) for d in router.groups[g]]
    prices = [p.input for d in reachable if (p := price_of(d.deployment)) is not None]
    if not prices:
        return None
    if tokens is None:
        tokens = embedding_input_tokens(router.groups[request.model][0].model, request.input)
    return max(prices) * tokens


def embedding_input_tokens(model: str, given: EmbeddingInput) -> int:
    """How many tokens an embeddings input is for ``model`` (token ids count as they are)."""
    items = [given] if isinstance(given, str) else given
    return sum(_tokens(model, item) for item in items)


def _tokens(model: str, item: str | int | list[int]) -> int:
    if isinstance(item, str):
        return count_tokens(model, text=item).tokens
    return len(item) if isinstance(item, list) else 1
