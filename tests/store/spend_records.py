"""A usage record with every field set, for the spend log's tests."""

from __future__ import annotations

from decimal import Decimal

from chatgate.cost.usage import UsageRecord

__all__ = ["FULL"]

FULL = UsageRecord(
    ts=1798761599.5,
    model="smart",
    request_id="r2",
    key_id="k1",
    user_id="u1",
    team_id="t1",
    tags=("a", "b"),
    deployment="smart#0",
    provider="openai",
    served_model="gpt-4o",
    stream=True,
    prompt_tokens=100,
    completion_tokens=20,
    cached_tokens=40,
    cache_write_tokens=8,
    cache_write_1h_tokens=2,
    reasoning_tokens=5,
    cost=Decimal("0.0000012345"),
    latency_ms=12.5,
    ttft_ms=3.25,
    finish_reason="stop",
    attempts=2,
    cache_hit=True,
    error="RateLimitError",
    record_id="id-2",
    tier="cheap",
    tier_score=0.25,
    saved=Decimal("0.5"),
    fallback=False,
    cache_saved=Decimal("0.000001"),
    prompt_saved=Decimal("0.000002"),
    batch_saved=Decimal("0.000003"),
    attempt_log='[{"d":"smart#0"}]',
)
