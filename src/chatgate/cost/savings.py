"""What a call saved, by lever, written with its spend-log row (tiering's saving is priced
by the tiered router itself, ``tiering/``):

- ``cache``: an answer from chatgate's response cache; what the call it replaced cost when
  it was made (``meta.cache_saved_cost``), else its tokens at the served model's list price.
- ``prompt``: prompt-cache reads, billed at ``cached_input`` instead of ``input`` (the
  long-context tier's prices above its threshold; the batch discount on a batch job).
- ``batch``: a provider batch job's discount off the same tokens' live price.

Each is None when that lever did not act or no list price is known: recorded, never a guess
at view time. A pure function of the record's tokens and the price (Decimal USD).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from chatgate.cost.calc import cost_of, token_parts
from chatgate.cost.prices import ModelPrice, lookup_price
from chatgate.types import Usage

__all__ = ["NONE", "Savings", "prompt_cache_saving", "recorded_savings", "savings"]


@dataclass(frozen=True, slots=True)
class Savings:
    cache: Decimal | None = None
    prompt: Decimal | None = None
    batch: Decimal | None = None


NONE = Savings()


def prompt_cache_saving(
    prompt_tokens: int, cached_tokens: int, price: ModelPrice, *, batch: bool = False
) -> Decimal | None:
    """USD the cache reads saved against the same tokens at the input price."""
    if cached_tokens <= 0:
        return None
    full, cached = price.input, price.cached_input
    tier = price.long_context
    if tier is not None and prompt_tokens > tier.above:
        full = tier.input
        cached = tier.cached_input if tier.cached_input is not None else cached
    if cached is None or cached >= full:
        return None
    saved = cached_tokens * (full - cached)
    if batch and price.batch_discount is not None:
        saved *= price.batch_discount
    return saved


def savings(
    usage: Usage | None,
    price: ModelPrice | None,
    *,
    cache_hit: bool = False,
    cache_cost: Decimal | None = None,
    batch: bool = False,
) -> Savings:
    """The levers that acted on one call (``batch``: it ran in a provider's batch job)."""
    if cache_hit:
        if cache_cost is None and usage is not None and price is not None:
            cache_cost = cost_of(usage, price)
        return Savings(cache=cache_cost) if cache_cost else NONE
    if usage is None or price is None:
        return NONE
    prompt = prompt_cache_saving(usage.prompt_tokens, token_parts(usage)[1], price, batch=batch)
    discount = None
    if batch and price.batch_discount is not None and price.batch_discount < 1:
        full = cost_of(usage, price)
        discount = full - full * price.batch_discount
    return Savings(prompt=prompt, batch=discount or None)


def recorded_savings(
    usage: Usage | None,
    served: str | None,
    cost: Decimal | None,
    *,
    cache_hit: bool = False,
    cache_cost: Decimal | None = None,
    batch_job: bool = False,
) -> Savings:
    """``savings`` at the list price of ``served`` (provider/model). A line of a batch job
    counts as run in the provider's batch when it was billed at the batch price (a job's
    lines may also run live, at the full price)."""
    if not (cache_hit or batch_job) and (usage is None or not token_parts(usage)[1]):
        return NONE  # most calls: no lever acted, and no price is looked up
    price = lookup_price(served) if served else None
    batch = False
    if batch_job and price is not None and usage is not None and cost is not None:
        batch = price.batch_discount is not None and cost == cost_of(usage, price, batch=True)
    return savings(usage, price, cache_hit=cache_hit, cache_cost=cache_cost, batch=batch)
