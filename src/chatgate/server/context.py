"""RequestContext: what the gateway knows about one request, filled in as it goes.

The usage middleware creates it when a request arrives (the ids and the tags the client
sent); the auth middleware, serving and the answer (request.py) fill in their own fields, each
field from one module (``OWNERS``); it gives the ``x-chatgate-*`` response headers, and at the
end the usage middleware hands it (as is) to the usage pipeline, which turns it into metrics,
the access-log line and the spend record off the request path. Nothing here does I/O.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chatgate.cost.attempt_log import attempts_json
from chatgate.cost.budget_tags import MAX_TAG_CHARS, MAX_TAGS
from chatgate.cost.budgets import Reservation
from chatgate.cost.savings import recorded_savings
from chatgate.cost.usage import UsageRecord, token_fields
from chatgate.meta import Attempt
from chatgate.server.asgi import Scope
from chatgate.server.keys import KeyRecord
from chatgate.server.request_tags import row_tags
from chatgate.tiering.route import TierChoice
from chatgate.types import Usage

__all__ = ["MAX_TAGS", "OWNERS", "RequestContext", "new_request_id", "usage_record"]

BATCHES = "/v1/batches"  # the route of a batch job's lines (server/batch_runner.py)
_MAX_TRACE_CHARS = 128


def new_request_id() -> str:
    # An identifier, not a secret: the Mersenne Twister (reseeded in forked workers) costs
    # 0.3 µs where os.urandom's system call measured 8 µs per request under load.
    return f"cg-{random.getrandbits(96):024x}"


def _tags(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    tags = (t.strip()[:MAX_TAG_CHARS] for t in value.split(","))
    return tuple(t for t in tags if t)[:MAX_TAGS]


# Who writes each field: the one module whose code assigns it (tests/unit/test_context_owners.py
# fails on an assignment anywhere else). Everything else only reads.
_USAGE = "chatgate.server.middleware.usage"  # the request's arrival and end
_AUTH = "chatgate.server.middleware.auth"  # who is calling
_SERVING = "chatgate.server.serving"  # what served it, what it used and cost
_REQUEST = "chatgate.server.request"  # how it was answered, what was asked
_HOLDS = "chatgate.server.holds"  # what was taken from the key's limits and budgets
OWNERS: dict[str, str] = {
    **dict.fromkeys(("route", "request_id", "started", "time", "trace_id"), _USAGE),
    "tags": _SERVING,  # the header's at arrival (from_scope); the body's added by serving
    **dict.fromkeys(("log_content", "ended"), _USAGE),
    **dict.fromkeys(("admin", "key", "key_id", "user_id", "team_id"), _AUTH),
    **dict.fromkeys(("hold", "key_tokens"), _HOLDS),
    **dict.fromkeys(("cache_status", "requested_model"), _SERVING),
    **dict.fromkeys(("deployment", "deployment_id", "stream", "attempts", "upstream_s"), _SERVING),
    **dict.fromkeys(("usage", "cost", "ttft_ms", "finish_reason", "cache_hit"), _SERVING),
    "content_out": _SERVING,
    "fallback": _SERVING,
    "served_group": _SERVING,
    "tried": _SERVING,
    "cache_cost": _SERVING,
    "tier": "chatgate.server.tier_hints",  # the tiered router's listener
    "tier_saved": _SERVING,
    "span_context": "chatgate.server.tracing",  # the request's span, for the spend write
    **dict.fromkeys(("status", "error_class", "refused", "overhead_ms", "content_in"), _REQUEST),
}


@dataclass(slots=True, eq=False)
class RequestContext:
    """One request's facts. Each field has one writer (``OWNERS``): the usage middleware
    (arrival, end), the auth middleware (the caller), serving (model, deployment, attempts,
    usage, cost), request.py (status, error, the overhead header, the content a route keeps
    with ``log_content``). The usage middleware hands it to the pipeline, which
    only reads. Nothing here writes or does I/O."""

    route: str
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    time: float = field(default_factory=time.time)  # wall clock, for the log line
    trace_id: str | None = None
    tags: tuple[str, ...] = ()
    admin: bool = False  # came with the master key
    key: KeyRecord | None = None  # the virtual key the request came with
    key_id: str | None = None  # its id (never the secret)
    user_id: str | None = None
    team_id: str | None = None
    hold: Reservation | None = None  # the budget hold, until the answer is settled
    key_tokens: int | None = None  # TPM taken from the key's bucket, until corrected
    cache_status: str | None = None  # hit | miss, when a cache is configured
    requested_model: str | None = None
    deployment: str | None = None  # provider/model that served (or was tried)
    deployment_id: str | None = None  # the router's id of that deployment ("smart#0")
    stream: bool = False
    status: int = 0
    attempts: int = 0
    upstream_s: float = 0.0  # time spent waiting for the upstream before the answer began
    overhead_ms: float | None = None
    usage: Usage | None = None
    cost: Decimal | None = None
    ttft_ms: float | None = None
    finish_reason: str | None = None
    cache_hit: bool = False
    cache_cost: Decimal | None = None  # on a hit: what the cached answer cost when it was made
    error_class: str | None = None
    refused: bool = False  # answered 4xx before any upstream was tried
    ended: float = 0.0
    log_content: bool = False  # general_settings.log_content when the request arrived
    content_in: Any = None  # only kept when log_content is true
    content_out: Any = None
    fallback: bool | None = None  # answered by a fallback group, once known
    served_group: str | None = None  # the model group that answered, once known
    tried: list[Attempt] | None = None  # the router's attempts, kept only if more than one
    span_context: Any = None  # the request's OpenTelemetry span context, when traced
    tier: TierChoice | None = None  # a tiered name's choice, heard before the answer
    tier_saved: Decimal | None = None  # USD saved against the premium tier

    @classmethod
    def from_scope(cls, scope: Scope, route: str, *, log_content: bool = False) -> RequestContext:
        headers = dict(scope["headers"])  # at C speed; the last of repeated names counts
        trace = headers.get(b"x-chatgate-trace-id")
        tags = headers.get(b"x-chatgate-tags")
        return cls(
            route=route,
            trace_id=None if trace is None else trace.decode("latin-1")[:_MAX_TRACE_CHARS],
            tags=() if tags is None else _tags(tags.decode("latin-1")),
            log_content=log_content,
        )

    def header_list(self, overhead_ms: float) -> list[tuple[str, str]]:
        """The x-chatgate-* response headers, as known when the response starts."""
        headers = [("x-chatgate-request-id", self.request_id)]
        if not self.refused:  # a refusal says nothing about the deployments behind a name
            if self.deployment is not None:
                headers.append(("x-chatgate-model", self.deployment))
            if self.attempts:
                headers.append(("x-chatgate-attempts", str(self.attempts)))
            cache = self.cache_status or ("hit" if self.cache_hit else None)
            if cache is not None:
                headers.append(("x-chatgate-cache", cache))
        if self.cost is not None:  # known up front for whole answers, not for streams
            headers.append(("x-chatgate-cost", f"{self.cost:f}"))
        if self.tier is not None:
            headers.append(("x-chatgate-tier", self.tier.tier))
            if self.tier.score is not None:
                headers.append(("x-chatgate-tier-score", f"{self.tier.score:.3f}"))
            if self.tier_saved is not None:
                headers.append(("x-chatgate-saved-usd", f"{self.tier_saved:f}"))
        headers.append(("x-chatgate-overhead-ms", f"{overhead_ms:.2f}"))
        return headers

    @property
    def latency_ms(self) -> float:
        return ((self.ended or time.perf_counter()) - self.started) * 1000.0


def usage_record(ctx: RequestContext) -> UsageRecord:
    """The spend-log row for a finished request (ids and numbers only, never content)."""
    provider, _, served = (ctx.deployment or "").partition("/")  # the provider's own names
    tier = ctx.tier
    saved = ctx.tier_saved
    if tier is not None and saved is None:  # a stream: priced at its end
        saved = tier.saving(ctx.usage, ctx.cost)
    levers = recorded_savings(
        ctx.usage,
        ctx.deployment,
        ctx.cost,
        cache_hit=ctx.cache_hit,
        cache_cost=ctx.cache_cost,
        batch_job=ctx.route == BATCHES,
    )
    return UsageRecord(
        ts=time.time(),
        model=ctx.requested_model or "",
        request_id=ctx.request_id,
        key_id=ctx.key_id,
        user_id=ctx.user_id,
        team_id=ctx.team_id,
        tags=row_tags(ctx.key, ctx.tags),  # the key's tags first
        deployment=ctx.deployment_id,
        provider=provider or None,
        served_model=served or None,
        stream=ctx.stream,
        **token_fields(ctx.usage),
        cost=ctx.cost,
        latency_ms=ctx.latency_ms,
        ttft_ms=ctx.ttft_ms,
        finish_reason=ctx.finish_reason,
        attempts=ctx.attempts,
        cache_hit=ctx.cache_hit,
        error=ctx.error_class,
        tier=None if tier is None else tier.tier,
        tier_score=None if tier is None else tier.score,
        saved=saved,
        fallback=ctx.fallback,
        cache_saved=levers.cache,
        prompt_saved=levers.prompt,
        batch_saved=levers.batch,
        attempt_log=None if ctx.tried is None else attempts_json(ctx.tried),
    )
