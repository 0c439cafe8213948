"""``Router(cache=...)`` against the fake OpenAI upstream: every call of the Router, chat or
embeddings, whole or streamed, blocking or not, goes through its cache with the per-call
control ``completion(cache=...)`` takes, counted by the requests the upstream received."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

import chatgate
from chatgate.cache import Cache
from chatgate.cache.keys import embedding_key
from chatgate.config import load as load_config
from chatgate.embeddings import build_embedding
from chatgate.router.guarded import served_by
from chatgate.types import ChatResponse
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.guarded_support import (
    HI,
    D,
    chats,
    embeds,
    entry,
    router,
    spent,
)


async def test_a_router_with_a_cache_answers_a_repeat_from_it(fake: FakeOpenAI) -> None:
    r = router(fake, cache=True)
    first = await r.acompletion("smart", HI, temperature=0)
    second = await r.acompletion("smart", HI, temperature=0)
    assert chats(fake) == 1
    assert (first.meta.cache_hit, second.meta.cache_hit) == (False, True)
    assert second.content == first.content
    assert second.meta.model_name == "smart"


async def test_per_call_control_is_the_one_completion_takes(fake: FakeOpenAI) -> None:
    r = router(fake, cache=True)
    await r.acompletion("smart", HI, temperature=0, cache={"no-store": True})
    await r.acompletion("smart", HI, temperature=0)  # nothing was stored: a miss, stored
    await r.acompletion("smart", HI, temperature=0, cache=False)  # bypassed
    hit = await r.acompletion("smart", HI, temperature=0)
    assert chats(fake) == 3
    assert hit.meta.cache_hit
    await r.acompletion("smart", HI, temperature=0.7, cache=True)  # forced: stored
    forced = await r.acompletion("smart", HI, temperature=0.7, cache=True)
    assert forced.meta.cache_hit
    assert chats(fake) == 4


async def test_cache_settings_build_the_routers_own_cache(fake: FakeOpenAI) -> None:
    r = router(fake, cache={"backend": "memory", "mode": "always", "ttl": 60})
    await r.acompletion("smart", HI, temperature=0.9)
    again = await r.acompletion("smart", HI, temperature=0.9)  # mode always: any request
    assert again.meta.cache_hit
    assert chats(fake) == 1


def test_bad_cache_settings_are_refused_naming_the_field(fake: FakeOpenAI) -> None:
    with pytest.raises(chatgate.InvalidRequestError) as info:
        router(fake, cache={"backend": "memcached"})
    assert info.value.param == "cache.backend"
    with pytest.raises(chatgate.InvalidRequestError) as info:
        router(fake, cache={"ttl": 60, "tll": 5})
    assert info.value.param == "cache.tll"
    with pytest.raises(chatgate.InvalidRequestError) as info:
        router(fake, cache=3)  # type: ignore[arg-type]
    assert info.value.param == "cache"


async def test_the_process_cache_serves_a_router_unless_it_says_no(
    fake: FakeOpenAI, cache: Cache
) -> None:
    default = router(fake)
    await default.acompletion("smart", HI, temperature=0)
    assert (await default.acompletion("smart", HI, temperature=0)).meta.cache_hit
    never = router(fake, cache=False)
    assert not (await never.acompletion("smart", HI, temperature=0)).meta.cache_hit
    assert chats(fake) == 2
    assert cache.stats.hits == 1


async def test_asking_a_router_without_a_cache_for_caching_is_an_error(fake: FakeOpenAI) -> None:
    r = router(fake)
    with pytest.raises(chatgate.InvalidRequestError, match="cache=True") as info:
        await r.acompletion("smart", HI, temperature=0, cache=True)
    assert info.value.param == "cache"
    assert chats(fake) == 0


async def test_a_cached_stream_replays_and_the_sync_face_caches_too(fake: FakeOpenAI) -> None:
    r = router(fake, cache=True)
    live = await r.acompletion("smart", HI, temperature=0, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in live if c.choices])
    replay = await r.acompletion("smart", HI, temperature=0, stream=True)
    again = "".join([c.choices[0].delta.content or "" async for c in replay if c.choices])
    assert (text, replay.cache_hit) == (again, True)
    whole = await asyncio.to_thread(r.completion, "smart", HI, temperature=0)
    assert isinstance(whole, ChatResponse)
    assert whole.meta.cache_hit
    assert whole.content == text
    assert chats(fake) == 1


async def test_a_cache_hit_costs_nothing(fake: FakeOpenAI) -> None:
    r = router(fake, cache=True, budgets=[{"scope": "global", "limit": "1"}])
    first = await r.acompletion("smart", HI, temperature=0, max_tokens=100)
    hit = await r.acompletion("smart", HI, temperature=0, max_tokens=100)
    assert hit.meta.cache_hit
    assert hit.cost == 0
    assert await spent(r.budgets) == (first.cost, 0)


async def test_two_routers_naming_different_models_alike_never_share_answers(
    fake: FakeOpenAI, cache: Cache
) -> None:
    with FakeOpenAI() as other:
        first = router(fake)
        second = chatgate.Router([entry("smart", other, model="gpt-4o-mini")], num_retries=0)
        await first.acompletion("smart", HI, temperature=0)
        answer = await second.acompletion("smart", HI, temperature=0)
        again = await second.acompletion("smart", HI, temperature=0)
    assert not answer.meta.cache_hit
    assert again.meta.cache_hit
    assert (chats(fake), chats(other)) == (1, 1)


def test_cache_is_a_valid_parameter_of_the_blocking_call(fake: FakeOpenAI) -> None:
    r = router(fake, cache=True)
    r.completion("smart", HI, temperature=0.7, cache=True)
    again = r.completion("smart", HI, temperature=0.7, cache=True)
    assert isinstance(again, ChatResponse)
    assert again.meta.cache_hit
    assert chats(fake) == 1


async def test_embeddings_go_through_the_routers_cache(fake: FakeOpenAI) -> None:
    r = chatgate.Router(
        [entry("embed", fake, model="text-embedding-3-small")],
        cache=True,
        budgets=[{"scope": "global", "limit": "1"}],
    )
    first = await r.aembedding("embed", ["alpha", "beta"])
    hit = await r.aembedding("embed", ["alpha", "beta"], user="someone")  # user: not in the key
    assert (first.meta.cache_hit, hit.meta.cache_hit) == (False, True)
    assert hit.data == first.data
    assert (hit.meta.cost, hit.meta.cache_saved_cost) == (0, first.meta.cost)
    assert hit.meta.deployment == first.meta.deployment
    other = await r.aembedding("embed", ["alpha", "beta"], encoding_format="base64")
    assert not other.meta.cache_hit  # another answer's shape: another entry
    unstored = await r.aembedding("embed", "gamma", cache={"no-store": True})
    bypassed = await r.aembedding("embed", "gamma", cache=False)
    stored = await r.aembedding("embed", "gamma")
    assert (bypassed.meta.cache_hit, stored.meta.cache_hit) == (False, False)
    assert embeds(fake) == 5
    budgets = r.budgets
    assert budgets is not None
    [state] = await budgets.status(model="embed")
    answers = (first, hit, other, unstored, bypassed, stored)
    assert state.spent == sum((a.meta.cost or D(0) for a in answers), D(0))
    assert state.reserved == 0


async def test_a_stored_entry_that_is_not_an_embedding_is_a_miss(fake: FakeOpenAI) -> None:
    cache = Cache("memory")
    r = chatgate.Router([entry("embed", fake, model="text-embedding-3-small")], cache=cache)
    await r.aembedding("embed", "alpha")
    request = build_embedding("embed", {"input": "alpha"})
    key = embedding_key(request, "embed", partition=served_by(r, "embed"))
    assert await cache.read(key) is not None
    await cache.write(key, b"not json", None)
    again = await r.aembedding("embed", "alpha")
    assert not again.meta.cache_hit
    assert embeds(fake) == 2


async def test_a_gateway_config_gives_a_router_its_cache_and_budgets(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    config = {
        "model_list": [entry("smart", fake)],
        "general_settings": {
            "cache": {"backend": "sqlite", "path": str(tmp_path / "cache.db"), "mode": "always"},
            "budgets": [{"scope": "user", "limit": "0.00005", "window": "daily"}],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    parsed = load_config(path)
    general = parsed.general_settings
    r = chatgate.Router.from_config(parsed, cache=general.cache, budgets=general.budgets)
    await r.acompletion("smart", HI, max_tokens=20, user="ann")
    assert (await r.acompletion("smart", HI, max_tokens=20, user="ann")).meta.cache_hit
    with pytest.raises(chatgate.BudgetExceededError, match="user:ann:daily"):
        await r.acompletion("smart", HI, max_tokens=100, user="ann")
    assert chats(fake) == 1
