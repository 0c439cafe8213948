"""RequestContext: what the gateway knows about one request, filled in as it goes.

It is created when a request arrives, carries the ids and the tags the client sent, gains the
model, usage, cost and outcome as the handler learns them, gives the ``x-chatgate-*`` response
headers, and at the end is handed (as is) to the usage pipeline, which turns it into metrics
and the access-log line off the request path. Nothing here does I/O.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chatgate.cost.budgets import Reservation
from chatgate.cost.usage import UsageRecord, token_fields
from chatgate.errors import APIError
from chatgate.meta import tries
from chatgate.server.asgi import Scope
from chatgate.server.keys import KeyRecord
from chatgate.tiering.route import TierChoice, TierHints
from chatgate.types import ChatResponse, Usage

__all__ = ["MAX_TAGS", "RequestContext", "new_request_id", "tier_hints", "usage_record"]

MAX_TAGS = 16
_MAX_TAG_CHARS = 64
_MAX_TRACE_CHARS = 128


def new_request_id() -> str:
    # An identifier, not a secret: the Mersenne Twister (reseeded in forked workers) costs
    # 0.3 µs where os.urandom's system call measured 8 µs per request under load.
    return f"cg-{random.getrandbits(96):024x}"


def _tags(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    tags = (t.strip()[:_MAX_TAG_CHARS] for t in value.split(","))
    return tuple(t for t in tags if t)[:MAX_TAGS]


@dataclass(slots=True, eq=False)
class RequestContext:
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
    error_class: str | None = None
    refused: bool = False  # answered 4xx before any upstream was tried
    ended: float = 0.0
    log_content: bool = False  # general_settings.log_content when the request arrived
    content_in: Any = None  # only kept when log_content is true
    content_out: Any = None
    tier: TierChoice | None = None  # a tiered name's choice, heard before the answer
    tier_saved: Decimal | None = None  # USD saved against the premium tier

    @classmethod
    def from_scope(cls, scope: Scope, route: str) -> RequestContext:
        trace_id = tags = None
        for key, value in scope["headers"]:
            if key == b"x-chatgate-trace-id":
                trace_id = value.decode("latin-1")[:_MAX_TRACE_CHARS]
            elif key == b"x-chatgate-tags":
                tags = value.decode("latin-1")
        return cls(route=route, trace_id=trace_id, tags=_tags(tags))

    def authenticated(self, key: KeyRecord) -> None:
        self.key = key
        self.key_id = key.key_id
        self.user_id = key.user
        self.team_id = key.team

    def served_by(self, name: str, deployment: str, *, stream: bool = False) -> None:
        self.requested_model = name
        self.deployment = deployment
        self.stream = stream
        self.attempts = 1

    def upstream_answered(self, began: float) -> None:
        self.upstream_s += time.perf_counter() - began

    def headers(self) -> list[tuple[str, str]]:
        """The x-chatgate-* response headers, as known when the response starts."""
        overhead = (time.perf_counter() - self.started - self.upstream_s) * 1000.0
        self.overhead_ms = overhead
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
        headers.append(("x-chatgate-overhead-ms", f"{overhead:.2f}"))
        return headers

    def take_response(self, response: ChatResponse) -> None:
        """Usage, cost and outcome from a finished answer (non-stream, or a stream's final)."""
        meta = response.meta
        self.usage = response.usage
        self.cost = meta.cost
        self.cache_hit = meta.cache_hit
        self.attempts = max(self.attempts, meta.attempts)
        self.finish_reason = response.finish_reason
        if self.ttft_ms is None and meta.ttft_ms is not None:
            self.ttft_ms = meta.ttft_ms
        if meta.provider:
            self.deployment = f"{meta.provider}/{meta.model}"
        if self.log_content:
            self.content_out = response.content
        if meta.tier is not None:
            self.tier_saved = meta.tier_saved_cost

    def fail(self, exc: BaseException, status: int, code: str | None = None) -> None:
        """Record the failure: the error's class, or the gateway's own error code, and how
        many upstream attempts a Router made before giving up."""
        self.error_class = code or type(exc).__name__
        self.status = status
        tried = getattr(exc, "attempt_log", None)
        if tried:
            self.attempts = max(self.attempts, tries(tried))
        self.refused = status < 500 and not tried and not isinstance(exc, APIError)

    def finish(self) -> None:
        self.ended = time.perf_counter()

    @property
    def latency_ms(self) -> float:
        return ((self.ended or time.perf_counter()) - self.started) * 1000.0


def tier_hints(scope: Scope, ctx: RequestContext) -> TierHints:
    """A tiered call's override (x-chatgate-tier) and session (x-chatgate-session) headers;
    the choice is kept on ``ctx`` for the response headers and the spend log."""
    tier = session = None
    for key, value in scope["headers"]:
        if key == b"x-chatgate-tier":
            tier = value.decode("latin-1").strip()
        elif key == b"x-chatgate-session":
            session = value.decode("latin-1")[:_MAX_TRACE_CHARS]

    def heard(choice: TierChoice) -> None:
        ctx.tier = choice

    return TierHints(tier=tier, session=session, on_choice=heard)


def usage_record(ctx: RequestContext) -> UsageRecord:
    """The spend-log row for a finished request (ids and numbers only, never content)."""
    provider, _, served = (ctx.deployment or "").partition("/")
    tier = ctx.tier
    if tier is not None and ctx.tier_saved is None:  # a stream: priced at its end
        ctx.tier_saved = tier.saving(ctx.usage, ctx.cost)
    return UsageRecord(
        ts=time.time(),
        model=ctx.requested_model or "",
        request_id=ctx.request_id,
        key_id=ctx.key_id,
        user_id=ctx.user_id,
        team_id=ctx.team_id,
        tags=ctx.tags,
        deployment=ctx.deployment,
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
        saved=ctx.tier_saved,
    )
