"""How an answer was obtained: which deployment, how many tries, what it cost. Not part of
any wire format; every ChatResponse carries one as ``response.meta``."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

__all__ = ["Attempt", "ResponseMeta", "tries"]


class Attempt(BaseModel):
    """One try in a routed call: which deployment, how it ended, how long we waited after.
    A fallback group the caller may not use is logged too, never tried: ``skipped`` says why,
    and ``deployment`` and ``model`` are the group's name."""

    deployment: str  # the deployment's id in the router ("smart#0", or its configured id)
    model: str  # the provider/model string tried
    error: str | None = None  # the error class name; None for the attempt that answered
    status_code: int | None = None
    wait_s: float = 0.0  # backoff slept after this attempt, before the next
    skipped: str | None = None  # set for a fallback group that was not tried: why
    message: str | None = None  # the error's message (scrubbed where it left the provider)
    latency_ms: float | None = None  # from sending the attempt to its answer or error


def tries(log: list[Attempt]) -> int:
    """How many upstream attempts a log holds (skipped fallbacks are not attempts)."""
    count = len(log)
    for attempt in log:  # a loop, not sum() over a generator: every stream counts its log
        if attempt.skipped is not None:
            count -= 1
    return count


class ResponseMeta(BaseModel):
    """How the answer was obtained. Not part of the wire format."""

    provider: str = ""
    model: str = ""  # the upstream model that served the answer
    request_id: str | None = None
    latency_ms: float = 0.0
    attempts: int = 1
    ttft_ms: float | None = None
    model_name: str | None = None  # the name the caller asked a router for
    deployment: str | None = None  # the router deployment that answered
    attempt_log: list[Attempt] = Field(default_factory=list)  # every try, in order
    cost: Decimal | None = None  # USD; None when the model's price is unknown
    cache_hit: bool = False
    cache_saved_cost: Decimal | None = None  # on a hit: what the answer cost when it was made
    cache_similarity: float | None = None  # on a semantic hit: cosine of the matched question
    tier: str | None = None  # a tiered name's tier that answered (docs/routing.md)
    tier_score: float | None = None  # the classifier's score; None when a header chose the tier
    tier_saved_cost: Decimal | None = None  # USD the premium tier would have cost more
