"""Usage and cost summed over the several calls one feature makes (retries, tool rounds,
summaries), so every result can say what it took in total.

Cost is exact (Decimal USD) or unknown: one call with an unknown price makes the total
unknown (None), never a silent undercount.
"""

from __future__ import annotations

from decimal import Decimal

from chatgate.types import ChatResponse, CompletionTokensDetails, PromptTokensDetails, Usage

__all__ = ["Spend", "add_usage"]


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _cached(usage: Usage) -> int | None:
    details = usage.prompt_tokens_details
    return details.cached_tokens if details is not None else None


def _reasoning(usage: Usage) -> int | None:
    details = usage.completion_tokens_details
    return details.reasoning_tokens if details is not None else None


def add_usage(total: Usage, more: Usage) -> Usage:
    """The sum of two usages, cached and reasoning token details included."""
    prompt = PromptTokensDetails(cached_tokens=_add(_cached(total), _cached(more)))
    completion = CompletionTokensDetails(reasoning_tokens=_add(_reasoning(total), _reasoning(more)))
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        total_tokens=total.total_tokens + more.total_tokens,
        prompt_tokens_details=prompt if prompt.cached_tokens is not None else None,
        completion_tokens_details=(completion if completion.reasoning_tokens is not None else None),
    )


class Spend:
    """A running total of usage and cost over several responses."""

    __slots__ = ("calls", "cost", "cost_known", "usage")

    def __init__(self) -> None:
        self.usage = Usage()
        self.cost: Decimal = Decimal(0)
        self.cost_known = True
        self.calls = 0

    def add(self, response: ChatResponse) -> None:
        self.calls += 1
        if response.usage is not None:
            self.usage = add_usage(self.usage, response.usage)
        if response.meta.cost is None:
            self.cost_known = False
        else:
            self.cost += response.meta.cost

    def merge(self, other: Spend) -> None:
        self.calls += other.calls
        self.usage = add_usage(self.usage, other.usage)
        self.cost_known = self.cost_known and other.cost_known
        self.cost += other.cost

    @property
    def total_cost(self) -> Decimal | None:
        """USD for every call added, or None when any call's price was unknown."""
        return self.cost if self.cost_known else None

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens
