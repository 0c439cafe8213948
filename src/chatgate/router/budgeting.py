"""The most a routed call can cost: what a budget hold must cover before the router picks a
deployment. A call may be served by any deployment of any group it can reach (its fallbacks of
every kind, those the caller may use), and ``n`` choices may each use the whole output cap."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from chatgate.cost.calc import price_of
from chatgate.router.fallbacks import Allowed

if TYPE_CHECKING:
    from chatgate.cost.budgets import Budgets
    from chatgate.router.router import Router
    from chatgate.types import ChatRequest

__all__ = ["routed_worst_case"]


def routed_worst_case(
    router: Router, budgets: Budgets, request: ChatRequest, allowed: Allowed | None = None
) -> Decimal:
    """The worst case of ``request`` (its ``model`` a model_list name) over every deployment
    of every group in ``router.reachable(request.model, allowed)``; pass the same ``allowed``
    to ``router.aroute``. Raises as ``Budgets.worst_case`` does for a deployment with no
    price or no known output limit: a hold that cannot be bounded is not taken."""
    return max(
        budgets.worst_case(
            routed.model,
            request.messages,
            tools=request.tools,
            max_tokens=request.output_limit(),
            price=price_of(routed.deployment),
            n=request.n or 1,
        )
        for group in router.reachable(request.model, allowed)
        for routed in router.groups[group]
    )
