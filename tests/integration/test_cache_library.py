"""completion(cache=...) against the fake OpenAI upstream: hits, misses, policy and control,
counted by the requests the upstream actually received."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import chatgate
from chatgate.cache import Cache, CachePolicy, cache_status
from chatgate.types import ChatResponse
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json
from tests.integration.guarded_support import chats

HI = [{"role": "user", "content": "hello cache"}]


async def ask(fake: FakeOpenAI, **kw: Any) -> ChatResponse:
    kw.setdefault("messages", HI)
    return await chatgate.acompletion(
        model="openai/gpt-4o-mini", api_key="sk-test", api_base=fake.base_url, **kw
    )


async def test_without_configuration_nothing_is_cached(fake: FakeOpenAI) -> None:
    first = await ask(fake, temperature=0)
    second = await ask(fake, temperature=0)
    assert chats(fake) == 2
    assert not first.meta.cache_hit
    assert not second.meta.cache_hit


async def test_asking_for_caching_without_a_cache_is_an_error(fake: FakeOpenAI) -> None:
    with pytest.raises(chatgate.InvalidRequestError, match="configure_cache") as info:
        await ask(fake, temperature=0, cache=True)
    assert info.value.param == "cache"
    await ask(fake, temperature=0, cache={"no-store": True})  # nothing to refuse: fine
    assert chats(fake) == 1


async def test_repeatable_request_is_answered_from_the_cache(
    fake: FakeOpenAI, cache: Cache
) -> None:
    # an upstream that takes 200 ms: a hit must not (timing a hit against a loopback call
    # that takes a millisecond was a coin toss on a loaded machine)
    fake.script(Reply(json=completion_json("echo: hello cache"), delay_s=0.2))
    first = await ask(fake, temperature=0)
    second = await ask(fake, temperature=0.0, user="someone-else", metadata={"k": "v"})
    assert chats(fake) == 1
    assert not first.meta.cache_hit
    assert cache_status(first) == "miss"
    assert second.meta.cache_hit
    assert cache_status(second) == "hit"
    assert second.content == first.content == "echo: hello cache"
    assert second.usage == first.usage
    assert second.id == first.id
    assert second.model_extra == first.model_extra
    meta = second.meta
    assert (meta.provider, meta.model, meta.attempts) == ("openai", "gpt-4o-mini", 0)
    assert meta.cost == Decimal(0)
    assert meta.request_id is None
    assert first.meta.latency_ms >= 200
    assert meta.latency_ms < 100
    assert (cache.stats.hits, cache.stats.misses, cache.stats.stores) == (1, 1, 1)
    # the wire form is unchanged by the round trip through the cache
    assert second.model_dump(exclude_unset=True) == first.model_dump(exclude_unset=True)


async def test_sampled_requests_are_not_cached_unless_asked(fake: FakeOpenAI, cache: Cache) -> None:
    await ask(fake, temperature=0.7)
    await ask(fake, temperature=0.7)
    await ask(fake)
    assert chats(fake) == 3
    assert cache.stats.bypassed == 3
    await ask(fake, temperature=0.7, cache=True)
    forced = await ask(fake, temperature=0.7, cache=True)
    assert chats(fake) == 4
    assert forced.meta.cache_hit


async def test_per_model_policy(fake: FakeOpenAI) -> None:
    own = Cache(models={"openai/*": CachePolicy(mode="never")})
    await ask(fake, temperature=0, cache=own)
    await ask(fake, temperature=0, cache=own)
    assert chats(fake) == 2
    always = Cache(models={"openai/gpt-4o-mini": CachePolicy(mode="always")})
    await ask(fake, temperature=1, cache=always)
    assert (await ask(fake, temperature=1, cache=always)).meta.cache_hit
    assert chats(fake) == 3


async def test_no_cache_no_store_ttl_and_namespace(fake: FakeOpenAI, cache: Cache) -> None:
    await ask(fake, temperature=0, cache={"no-store": True})
    await ask(fake, temperature=0, cache={"no-cache": True})  # fresh, and stored
    assert chats(fake) == 2
    assert (await ask(fake, temperature=0)).meta.cache_hit
    assert not (await ask(fake, temperature=0, cache={"no-cache": True})).meta.cache_hit
    assert chats(fake) == 3
    await ask(fake, temperature=0, cache={"namespace": "team-a", "ttl": 60})
    assert chats(fake) == 4  # another namespace: a miss
    assert (await ask(fake, temperature=0, cache={"namespace": "team-a"})).meta.cache_hit
    assert not (await ask(fake, temperature=0, cache={"namespace": "team-b"})).meta.cache_hit
    assert chats(fake) == 5


async def test_different_servers_never_share_answers(cache: Cache) -> None:
    with FakeOpenAI() as one, FakeOpenAI() as two:
        await ask(one, temperature=0)
        await ask(two, temperature=0)
        assert chats(one) == chats(two) == 1


async def test_truncated_answers_are_not_stored_unless_asked(
    fake: FakeOpenAI, cache: Cache
) -> None:
    cut = completion_json("half an ans", finish_reason="length")
    fake.script(Reply(json=cut), Reply(json=cut))
    await ask(fake, temperature=0)
    assert (await ask(fake, temperature=0)).truncated
    assert chats(fake) == 2
    assert cache.stats.stores == 0
    keep = Cache(policy=CachePolicy(store_truncated=True))
    fake.script(Reply(json=cut))
    await ask(fake, temperature=0, cache=keep)
    hit = await ask(fake, temperature=0, cache=keep)
    assert hit.meta.cache_hit
    assert hit.truncated
    assert chats(fake) == 3
    with pytest.raises(chatgate.TruncatedResponseError):
        await ask(fake, temperature=0, cache=keep, raise_on_truncation=True)
    assert chats(fake) == 3


async def test_errors_are_not_stored_unless_asked(fake: FakeOpenAI, cache: Cache) -> None:
    bad = Reply(status=400, json=error_json("bad thing", "invalid_request_error"))
    fake.script(bad, bad)
    for _ in range(2):
        with pytest.raises(chatgate.BadRequestError):
            await ask(fake, temperature=0)
    assert chats(fake) == 2
    keep = Cache(policy=CachePolicy(store_errors=True))
    fake.script(bad, Reply(status=429, json=error_json("slow", "rate_limit_error")))
    for _ in range(2):
        with pytest.raises(chatgate.BadRequestError, match="bad thing") as info:
            await ask(fake, temperature=0, cache=keep)
        assert info.value.status_code == 400
    assert chats(fake) == 3
    other = [{"role": "user", "content": "other"}]
    with pytest.raises(chatgate.RateLimitError):
        await ask(fake, temperature=0, cache=keep, messages=other)
    answer = await ask(fake, temperature=0, cache=keep, messages=other)  # a 429 is never stored
    assert answer.content == "echo: other"
    assert not answer.meta.cache_hit
    assert chats(fake) == 5


def test_sync_completion_uses_the_cache(fake: FakeOpenAI, cache: Cache) -> None:
    kw: dict[str, Any] = {"model": "gpt-4o-mini", "messages": HI, "api_key": "sk-test"}
    first = chatgate.completion(**kw, api_base=fake.base_url, seed=3)
    second = chatgate.completion(**kw, api_base=fake.base_url, seed=3)
    assert second.meta.cache_hit
    assert second.content == first.content
    with chatgate.completion(**kw, api_base=fake.base_url, seed=3, stream=True) as stream:
        assert stream.cache_hit
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == first.content
    assert stream.final().meta.cache_hit
    assert chats(fake) == 1


async def test_saved_cost_is_reported_on_a_hit(fake: FakeOpenAI) -> None:
    from chatgate.chat_request import chat_request
    from chatgate.client import send
    from chatgate.providers.registry import resolve_deployment
    from chatgate.transport.http import Timeouts

    cache = Cache()
    deployment = resolve_deployment("openai/gpt-4o-mini", api_key="sk", api_base=fake.base_url)
    request = chat_request("gpt-4o-mini", HI, {"temperature": 0})

    async def call() -> ChatResponse:  # a cost step as the router's would fill it
        response = await send(request, deployment, timeouts=Timeouts())
        response.meta.cost = Decimal("0.00042")
        return response

    first = await cache.get_or_call(request, "smart", call)
    hit = await cache.get_or_call(request, "smart", call)
    assert isinstance(first, ChatResponse)
    assert isinstance(hit, ChatResponse)
    assert first.meta.cost == Decimal("0.00042")
    assert not first.meta.cache_hit
    assert hit.meta.cost == 0
    assert hit.meta.cache_saved_cost == Decimal("0.00042")
    assert hit.cost == 0
