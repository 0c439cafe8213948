"""Embeddings through the Router against real fake upstreams: the same strategy, retries,
cooldowns, fallbacks, limits and admission control as chat."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import chatgate
from chatgate import Router
from chatgate.errors import (
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
)
from tests.clock import wait_until
from tests.fakes.openai_server import FakeOpenAI, embedding_vector, embeddings_reply
from tests.fakes.redis_server import RedisServer
from tests.integration.test_router import FAST, entry, err


@pytest.fixture
def fakes() -> Iterator[list[FakeOpenAI]]:
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as c:
        yield [a, b, c]


def embed_entry(
    name: str, fake: FakeOpenAI, model: str = "text-embedding-3-small", **params: Any
) -> Any:
    return entry(name, fake, model, **params)


@pytest.mark.parametrize(
    ("status", "error"), [(500, "InternalServerError"), (429, "RateLimitError")]
)
async def test_a_retryable_failure_is_retried_on_the_other_deployment(
    fakes: list[FakeOpenAI], status: int, error: str
) -> None:
    a, b, _ = fakes
    a.script(err(status))
    router = Router(
        [embed_entry("emb", a, "e-a"), embed_entry("emb", b, "e-b")],
        routing_strategy="round-robin",
        settings=FAST,
    )
    out = await router.aembedding("emb", ["one two", "three"])
    assert out.vectors == [embedding_vector("one two"), embedding_vector("three")]
    meta = out.meta
    assert (meta.attempts, meta.deployment, meta.model_name) == (2, "emb#1", "emb")
    first, second = meta.attempt_log
    assert (first.deployment, first.error, first.status_code) == ("emb#0", error, status)
    assert first.wait_s == 0.0  # the other deployment was healthy: no backoff
    assert (second.deployment, second.error) == ("emb#1", None)
    assert b.last.path == "/v1/embeddings"
    assert b.last.body == {"model": "e-b", "input": ["one two", "three"]}


@pytest.mark.parametrize(
    ("status", "type_", "error"),
    [
        (400, "invalid_request_error", BadRequestError),
        (401, "invalid_api_key", AuthenticationError),
    ],
)
async def test_request_and_key_errors_are_attempted_exactly_once(
    fakes: list[FakeOpenAI], status: int, type_: str, error: type[Exception]
) -> None:
    a, b, _ = fakes
    a.script(err(status, type_))
    router = Router([embed_entry("emb", a), embed_entry("emb", b)], routing_strategy="round-robin")
    with pytest.raises(error) as info:
        await router.aembedding("emb", "x")
    assert (len(a.requests), len(b.requests)) == (1, 0)
    assert [x.status_code for x in info.value.attempt_log] == [status]  # type: ignore[attr-defined]


async def test_failures_cool_a_deployment_and_the_next_calls_skip_it(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    a.script(err(503), err(503))
    router = Router(
        [embed_entry("emb", a), embed_entry("emb", b)],
        routing_strategy="round-robin",
        allowed_fails=2,
        cooldown_time=60,
        settings=FAST,
    )
    for _ in range(6):
        assert (await router.aembedding("emb", "x")).meta.deployment == "emb#1"
    assert len(a.requests) == 2  # then cooling: skipped, not tried
    [cool, _] = await router.state.view(["emb#0", "emb#1"], router.now())
    assert cool.cooldown_until > router.now() + 50
    assert cool.last_error == "InternalServerError"


async def test_fallbacks_move_to_another_embedding_group(fakes: list[FakeOpenAI]) -> None:
    a, b, _ = fakes
    a.script(err(500), err(500), err(500))
    entries = [embed_entry("primary", a), embed_entry("backup", b, "backup-embed")]
    router = Router(
        entries,
        fallbacks=[{"primary": ["backup"]}],
        num_retries=2,
        settings=FAST,
    )
    out = await router.aembedding("primary", "x", dimensions=4)
    assert (out.meta.model_name, out.meta.deployment) == ("backup", "backup#0")
    assert [x.error for x in out.meta.attempt_log] == ["InternalServerError"] * 3 + [None]
    assert b.last.body == {"model": "backup-embed", "input": "x", "dimensions": 4}
    a.script(err(500), err(500), err(500))
    fresh = Router(entries, fallbacks=[{"primary": ["backup"]}], settings=FAST)
    with pytest.raises(InternalServerError):
        await fresh.aembedding("primary", "x", disable_fallbacks=True)
    assert len(b.requests) == 1


async def test_a_deployment_rpm_limit_is_honoured(fakes: list[FakeOpenAI]) -> None:
    a, b, _ = fakes
    router = Router(
        [embed_entry("emb", a, rpm=1), embed_entry("emb", b, rpm=1)], settings={"limit_wait": 0.1}
    )
    await router.aembedding("emb", "x")
    await router.aembedding("emb", "x")
    started = time.monotonic()
    with pytest.raises(RateLimitError, match="RPM limit 1 reached") as info:
        await router.aembedding("emb", "x")
    assert time.monotonic() - started < 0.3
    assert info.value.retry_after is not None
    assert (len(a.requests), len(b.requests)) == (1, 1)


async def test_tpm_counts_the_input_tokens_the_provider_reports(fake: FakeOpenAI) -> None:
    router = Router([embed_entry("emb", fake, tpm=20)], settings={"limit_wait": 0.05})
    words = " ".join(f"w{i}" for i in range(15))  # the fake counts 15 tokens; estimated 13
    await router.aembedding("emb", words)
    [stats] = await router.state.view(["emb#0"], router.now())
    assert stats.tpm_left == pytest.approx(5, abs=0.5)  # corrected to the reported usage
    with pytest.raises(RateLimitError, match="TPM limit 20 reached"):
        await router.aembedding("emb", "a longer input than five tokens, by bytes")
    assert len(fake.requests) == 1


async def test_a_small_context_window_does_not_refuse_a_large_batch(fake: FakeOpenAI) -> None:
    """An embedding model's window bounds each input, not their sum: no pre-call refusal."""
    router = Router([embed_entry("emb", fake, context_window=16)])
    batch = ["some words to embed here"] * 20
    assert len((await router.aembedding("emb", batch)).vectors) == 20


async def test_admission_control_applies_to_embeddings(fake: FakeOpenAI) -> None:
    slow = embeddings_reply({"input": "slow"})
    slow.delay_s = 0.3
    fake.script(slow)
    router = Router([embed_entry("emb", fake)], settings={"max_parallel_requests": 1})
    first = asyncio.create_task(router.aembedding("emb", "slow"))
    await wait_until(lambda: len(fake.requests) == 1, what="the first call in flight")
    with pytest.raises(RateLimitError, match="at capacity"):
        await router.aembedding("emb", "x")
    with pytest.raises(RateLimitError, match="at capacity"):  # chat and embeddings share it
        await router.acompletion("emb", [{"role": "user", "content": "hi"}])
    assert (await first).vectors == [embedding_vector("slow")]


async def test_cost_from_the_configured_price(fake: FakeOpenAI) -> None:
    router = Router(
        [
            embed_entry(
                "emb",
                fake,
                "my-embed",
                input_cost_per_token="0.00000002",
                output_cost_per_token="0",
            )
        ]
    )
    out = await router.aembedding("emb", ["a b c", "d"])
    assert out.usage is not None
    assert out.usage.prompt_tokens == 4
    assert out.meta.cost == Decimal("0.00000002") * 4
    assert out.meta.provider == "openai"


def test_blocking_embedding_and_the_plain_library_call(fakes: list[FakeOpenAI]) -> None:
    a, b, _ = fakes
    a.script(err(502))
    router = Router([embed_entry("emb", a), embed_entry("emb", b)], routing_strategy="round-robin")
    out = router.embedding("emb", "x", encoding_format="float")
    assert (out.meta.attempts, out.meta.deployment) == (2, "emb#1")
    assert b.last.body["encoding_format"] == "float"
    plain = chatgate.embedding(
        "openai/text-embedding-3-small", "x", api_key="sk-test", api_base=b.base_url
    )
    assert (plain.meta.attempts, plain.meta.deployment) == (1, None)
    assert plain.meta.cost == Decimal("0.02") / 1_000_000  # 1 token at the list price


async def test_two_routers_on_redis_share_an_embedding_deployments_rpm(
    fake: FakeOpenAI, redis_server: RedisServer
) -> None:
    settings = {"redis_url": redis_server.url, "redis_namespace": uuid.uuid4().hex}
    first = Router([embed_entry("emb", fake, rpm=2)], settings={**settings, "limit_wait": 0})
    second = Router([embed_entry("emb", fake, rpm=2)], settings={**settings, "limit_wait": 0})
    try:
        await first.aembedding("emb", "x")
        await second.aembedding("emb", "x")
        with pytest.raises(RateLimitError, match="RPM limit 2 reached"):
            await first.aembedding("emb", "x")
        assert len(fake.requests) == 2
    finally:
        await first.aclose()
        await second.aclose()
