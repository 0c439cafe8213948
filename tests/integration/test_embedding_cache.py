"""Embeddings through the response cache without a Router: ``chatgate.aembedding(cache=...)``
and the gateway's ``/v1/embeddings`` (driven by the openai SDK), against a real fake upstream:
hits, single-flight, a caller that leaves, errors, the per-request controls, the spend log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest

import chatgate
from chatgate import Cache
from chatgate.errors import InternalServerError
from tests.clock import wait_until
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    embedding_vector,
    embeddings_reply,
    error_json,
)
from tests.gateway_harness import Gateway, deployment, gateway_config, serve
from tests.integration.test_gateway_keys import MASTER, new_key, spend_rows

KEY = "sk-upstream-embed-cache-7373"
PRICE = {"input_cost_per_token": "0.000001", "output_cost_per_token": "0"}


def slow(text: str, delay_s: float) -> Reply:
    reply = embeddings_reply({"input": text})
    return Reply(json=reply.json, delay_s=delay_s)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


def embed(fake: FakeOpenAI, text: str, cache: object) -> asyncio.Future[chatgate.EmbeddingResponse]:
    return asyncio.ensure_future(
        chatgate.aembedding(
            "openai/text-embedding-3-small",
            text,
            api_base=fake.base_url,
            api_key=KEY,
            cache=cache,  # type: ignore[arg-type]
        )
    )


async def test_a_repeated_embedding_is_answered_from_the_cache(fake: FakeOpenAI) -> None:
    cache = Cache()
    first = await embed(fake, "alpha beta", cache)
    again = await embed(fake, "alpha beta", cache)
    other = await embed(fake, "gamma", cache)
    assert len(fake.requests) == 2  # "alpha beta" once, "gamma" once
    assert not first.meta.cache_hit
    assert first.meta.cost is not None
    assert first.meta.cost > 0
    assert again.meta.cache_hit
    assert again.meta.cost == Decimal(0)
    assert again.meta.cache_saved_cost == first.meta.cost
    assert again.vectors == first.vectors == [embedding_vector("alpha beta")]
    assert not other.meta.cache_hit
    fresh = await embed(fake, "alpha beta", {"no-cache": True})
    assert len(fake.requests) == 3
    assert not fresh.meta.cache_hit
    assert cache.stats.hits == 1


async def test_identical_misses_in_flight_share_one_upstream_call(fake: FakeOpenAI) -> None:
    cache = Cache()
    fake.script(slow("same", 0.3))
    callers = [embed(fake, "same", cache) for _ in range(8)]
    answers = await asyncio.gather(*callers)
    assert len(fake.requests) == 1
    assert sum(not a.meta.cache_hit for a in answers) == 1  # the one that called pays
    assert {a.meta.cost for a in answers if a.meta.cache_hit} == {Decimal(0)}
    assert all(a.vectors == [embedding_vector("same")] for a in answers)
    assert cache.stats.coalesced == 7
    assert len({id(a) for a in answers}) == 8  # each caller has its own answer object


async def test_the_first_caller_leaving_fails_nobody_who_joined(fake: FakeOpenAI) -> None:
    cache = Cache()
    fake.script(slow("leave", 0.4))
    leader = embed(fake, "leave", cache)
    await wait_until(lambda: len(fake.requests) == 1)
    joined = embed(fake, "leave", cache)
    await wait_until(lambda: cache.stats.coalesced == 1, what="the second caller joining")
    leader.cancel()
    answer = await joined
    assert answer.vectors == [embedding_vector("leave")]
    assert fake.disconnects == 0
    assert len(fake.requests) == 1
    again = await embed(fake, "leave", cache)  # stored by the flight, though its caller left
    assert again.meta.cache_hit
    assert len(fake.requests) == 1


async def test_the_call_is_cancelled_when_every_caller_left(fake: FakeOpenAI) -> None:
    cache = Cache()
    fake.script(slow("gone", 5.0))
    callers = [embed(fake, "gone", cache) for _ in range(3)]
    await wait_until(lambda: len(fake.requests) == 1)
    for caller in callers:
        caller.cancel()
    assert await asyncio.to_thread(fake.wait_for_disconnect, 1, 2.0)
    for caller in callers:
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert cache.stats.stores == 0


async def test_an_upstream_error_reaches_every_caller_and_is_not_stored(fake: FakeOpenAI) -> None:
    cache = Cache()
    failing = Reply(status=500, json=error_json(f"boom {KEY}", "server_error"), delay_s=0.2)
    fake.script(failing)
    callers = [embed(fake, "err", cache) for _ in range(4)]
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, InternalServerError) for r in results), results
    assert all(KEY not in str(r) for r in results)
    assert len(fake.requests) == 1
    ok = await embed(fake, "err", cache)
    assert not ok.meta.cache_hit
    assert ok.vectors == [embedding_vector("err")]


def test_the_blocking_form_takes_the_cache(fake: FakeOpenAI) -> None:
    cache = Cache()
    kwargs = {"api_base": fake.base_url, "api_key": KEY, "cache": cache}
    first = chatgate.embedding("openai/text-embedding-3-small", "sync", **kwargs)  # type: ignore[arg-type]
    second = chatgate.embedding("openai/text-embedding-3-small", "sync", **kwargs)  # type: ignore[arg-type]
    assert (first.meta.cache_hit, second.meta.cache_hit) == (False, True)
    assert len(fake.requests) == 1


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("embed", upstream, "openai/text-embedding-3-small", api_key=KEY, **PRICE),
        master_key=MASTER,
        cache={"backend": "memory", "mode": "auto"},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def test_gateway_embeddings_are_cached_and_logged_as_hits(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    secret, record = new_key(gateway)
    before = len(upstream.requests)
    with gateway.openai_client(secret) as client:
        words = "cached words here"
        miss = client.embeddings.with_raw_response.create(model="embed", input=words)
        hit = client.embeddings.with_raw_response.create(model="embed", input=words)
        assert miss.headers["x-chatgate-cache"] == "miss"
        assert hit.headers["x-chatgate-cache"] == "hit"
        assert Decimal(miss.headers["x-chatgate-cost"]) == Decimal("0.000003")
        assert Decimal(hit.headers["x-chatgate-cost"]) == Decimal(0)
        assert hit.parse().data[0].embedding == pytest.approx(embedding_vector(words), rel=1e-6)
        fresh = client.embeddings.with_raw_response.create(
            model="embed", input=words, extra_headers={"Cache-Control": "no-cache"}
        )
        assert fresh.headers["x-chatgate-cache"] == "miss"
    assert len(upstream.requests) - before == 2  # the miss and the no-cache call
    row = spend_rows(gateway, "key", record["key_id"], requests=3)
    assert Decimal(row["cost"]) == Decimal("0.000006")
    line = gateway.wait_for_access_line(hit.headers["x-chatgate-request-id"])
    assert line["cache_hit"] is True
    assert KEY not in gateway.log_text()


def test_gateway_concurrent_identical_embeddings_make_one_upstream_call(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    upstream.script(slow("together now", 0.5))
    before = len(upstream.requests)

    async def burst() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key=MASTER, max_retries=0
        ) as client:
            raws = await asyncio.gather(
                *(
                    client.embeddings.with_raw_response.create(model="embed", input="together now")
                    for _ in range(6)
                )
            )
        return [raw.headers["x-chatgate-cache"] for raw in raws]

    statuses = asyncio.run(burst())
    assert len(upstream.requests) - before == 1
    assert sorted(statuses) == ["hit"] * 5 + ["miss"]
