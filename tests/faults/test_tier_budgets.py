"""A tiered name's budget hold covers its escalations: an answer escalated from a cheaper
tier is billed too (the call's cost is both tiers'), so the hold is the sum of the tiers'
worst cases when answers may escalate, not the dearest tier's alone. 60 concurrent calls to
a tiered name whose cheap tier always stops at max_tokens (``escalate_on: [length]``)
against a $0.01 key budget, through a real `chatgate serve` on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json
from tests.faults.budget_support import (
    DEAR,
    HI,
    LIMIT,
    MASTER,
    MAX_TOKENS,
    counters,
    new_key,
    post_many,
    priced,
)
from tests.gateway_harness import gateway_config, serve

CALLS = 60


def full(model: str, finish: str) -> Reply:
    usage = {"prompt_tokens": 8, "completion_tokens": MAX_TOKENS}
    answer = completion_json("ok", model=model, **usage)
    answer["choices"][0]["finish_reason"] = finish
    return Reply(json=answer, delay_s=0.05)


def test_escalations_never_overspend_a_budget(
    db_url: str, dear: FakeOpenAI, tmp_path: Path
) -> None:
    with FakeOpenAI() as small:
        small.script(*[full("small-model", "length")] * CALLS)  # every answer escalates
        dear.script(*[full("dear-model", "stop")] * CALLS)
        tiers = {
            "model_name": "auto",
            "tiers": ["small", "dear"],
            "classifier": {"embeddings": "never"},
            "escalate_on": ["length"],
        }
        config = gateway_config(
            priced("small", "small-model", small, DEAR),  # as dear as the top: the worst case
            priced("dear", "dear-model", dear, DEAR),
            master_key=MASTER,
            database=db_url,
            router={"num_retries": 0, "timeout": 30, "tiers": [tiers]},
            key_cache_ttl_s=0,
        )
        with serve(config, tmp_path) as gw:
            key, key_id = new_key(gw)
            body = {"model": "auto", "messages": HI, "max_tokens": MAX_TOKENS}
            statuses = asyncio.run(post_many(gw.url, key, [body] * CALLS))
            spent, reserved = asyncio.run(counters(db_url, key_id))
    assert set(statuses) <= {200, 402}
    assert 200 in statuses
    assert reserved == 0
    assert spent <= LIMIT, f"spent {spent} of {LIMIT} ({statuses.count(200)} answered)"
    escalated = Decimal(2) * (8 + MAX_TOKENS) * Decimal(DEAR)  # both tiers, each in full
    assert spent == statuses.count(200) * escalated
