"""``Router(cache=..., budgets=...)`` against the fake OpenAI upstream: every call of the
Router goes through its cache and holds, settles or releases on its budgets, counted by the
requests the upstream actually received and by the budgets' own counters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

import chatgate
from chatgate.cache import Cache, configure_cache
from chatgate.cache.keys import embedding_key
from chatgate.config import load as load_config
from chatgate.cost.budgets import Budget, Budgets
from chatgate.embeddings import build_embedding
from chatgate.router.guarded import served_by
from chatgate.types import ChatResponse
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json

D = Decimal
HI = [{"role": "user", "content": "hello router"}]
PRICE = "0.000001"  # USD per token, in and out: 100 output tokens cost $0.0001
DEAR = "0.00001"


def entry(name: str, fake: FakeOpenAI, price: str = PRICE, model: str = "gpt-4o") -> Any:
    return {
        "model_name": name,
        "params": {
            "model": f"openai/{model}",
            "api_base": fake.base_url,
            "api_key": "sk-upstream-guarded",
            "input_cost_per_token": price,
            "output_cost_per_token": price,
        },
    }


def router(fake: FakeOpenAI, **kw: Any) -> chatgate.Router:
    kw.setdefault("num_retries", 0)
    return chatgate.Router([entry("smart", fake)], **kw)


def chats(fake: FakeOpenAI) -> int:
    return sum(r.path.endswith("/chat/completions") for r in fake.requests)


async def spent(budgets: Budgets | None, **who: Any) -> tuple[Decimal, Decimal]:
    assert budgets is not None
    states = await budgets.status(model="smart", **who)
    return sum((s.spent for s in states), D(0)), sum((s.reserved for s in states), D(0))


@pytest.fixture
def process_cache() -> Iterator[Cache]:
    configured = configure_cache(Cache("memory"))
    assert configured is not None
    yield configured
    configure_cache(False)


# --- the cache -------------------------------------------------------------------------------


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
    fake: FakeOpenAI, process_cache: Cache
) -> None:
    default = router(fake)
    await default.acompletion("smart", HI, temperature=0)
    assert (await default.acompletion("smart", HI, temperature=0)).meta.cache_hit
    never = router(fake, cache=False)
    assert not (await never.acompletion("smart", HI, temperature=0)).meta.cache_hit
    assert chats(fake) == 2
    assert process_cache.stats.hits == 1


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


# --- budgets ---------------------------------------------------------------------------------


async def test_a_call_holds_its_worst_case_and_settles_the_exact_cost(fake: FakeOpenAI) -> None:
    fake.script(Reply(json=completion_json("ok", model="gpt-4o", prompt_tokens=9)))
    r = router(fake, budgets=[{"scope": "user", "limit": "1", "window": "daily"}])
    response = await r.acompletion("smart", HI, max_tokens=100, user="ann")
    assert response.cost == D("0.000012")  # 9 + 3 tokens at $1/M
    assert await spent(r.budgets, user="ann") == (D("0.000012"), 0)
    assert await spent(r.budgets, user="bob") == (0, 0)


async def test_a_budget_that_cannot_cover_the_worst_case_refuses_before_sending(
    fake: FakeOpenAI,
) -> None:
    r = router(fake, budgets=Budget("global", D("0.00005"), "lifetime"))
    with pytest.raises(chatgate.BudgetExceededError) as info:
        await r.acompletion("smart", HI, max_tokens=100)  # may cost 100 x $1/M + the prompt
    error = info.value
    assert (error.status_code, error.code, error.budget) == (
        402,
        "budget_exceeded",
        "global:*:lifetime",
    )
    assert chats(fake) == 0
    assert await spent(r.budgets) == (0, 0)
    await r.acompletion("smart", HI, max_tokens=20)  # a call it can cover goes through
    assert chats(fake) == 1


async def test_the_hold_covers_the_dearest_fallback(fake: FakeOpenAI) -> None:
    with FakeOpenAI() as dear:
        r = chatgate.Router(
            [entry("smart", fake), entry("dear", dear, DEAR)],
            fallbacks=[{"smart": ["dear"]}],
            budgets=[{"scope": "model", "limit": "0.0005", "subject": "smart"}],
        )
        # 100 tokens: $0.0001 on smart, but $0.001 if it falls back to dear
        with pytest.raises(chatgate.BudgetExceededError):
            await r.acompletion("smart", HI, max_tokens=100)
        assert chats(fake) == 0
        await r.acompletion("smart", HI, max_tokens=30)  # at most ~$0.0004 even on dear
    assert chats(fake) == 1


async def test_n_choices_each_may_use_the_whole_cap(fake: FakeOpenAI) -> None:
    r = router(fake, budgets=[{"scope": "global", "limit": "0.00025"}])
    await r.acompletion("smart", HI, max_tokens=100)
    with pytest.raises(chatgate.BudgetExceededError):
        await r.acompletion("smart", HI, max_tokens=100, n=3)
    assert chats(fake) == 1


async def test_a_failed_call_is_released_and_a_refused_one_leaves_nothing(
    fake: FakeOpenAI,
) -> None:
    fake.script(Reply(status=400, json=error_json("bad request", "invalid_request_error")))
    r = router(fake, budgets=[{"scope": "team", "limit": "1", "subject": "red"}])
    with pytest.raises(chatgate.BadRequestError):
        await r.acompletion("smart", HI, max_tokens=100, team="red")
    assert await spent(r.budgets, team="red") == (0, 0)


async def test_key_and_team_are_budget_subjects(fake: FakeOpenAI) -> None:
    r = router(
        fake,
        budgets=[
            {"scope": "key", "limit": "0.00005", "subject": "app-1"},
            {"scope": "team", "limit": "1", "subject": "red"},
        ],
    )
    with pytest.raises(chatgate.BudgetExceededError, match="key:app-1"):
        await r.acompletion("smart", HI, max_tokens=100, key="app-1", team="red")
    await r.acompletion("smart", HI, max_tokens=100, key="app-2", team="red")
    assert (await spent(r.budgets, team="red"))[0] > 0
    assert await spent(r.budgets, key="app-1") == (0, 0)


async def test_a_call_cancelled_in_flight_is_charged_its_hold(fake: FakeOpenAI) -> None:
    fake.script(Reply(json=completion_json("late"), delay_s=5))
    r = router(fake, budgets=[{"scope": "global", "limit": "1"}])
    task = asyncio.create_task(r.acompletion("smart", HI, max_tokens=100))
    await asyncio.sleep(0.5)  # sent, and waiting for the answer the fake holds back 5 s
    assert chats(fake) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    charged, held = await spent(r.budgets)
    assert held == 0
    assert D("0.0001") < charged < D("0.0002")  # the worst case: 100 out + the prompt, estimated


async def test_a_stream_settles_when_it_ends(fake: FakeOpenAI) -> None:
    r = router(fake, budgets=[{"scope": "global", "limit": "1"}])
    stream = await r.acompletion(
        "smart", HI, max_tokens=100, stream=True, stream_options={"include_usage": True}
    )
    assert (await spent(r.budgets))[1] > 0  # held while it runs
    final = await stream.afinal()
    await r.aclose()  # waits for the settlements of ended streams
    assert final.cost is not None
    assert final.cost > 0
    assert await spent(r.budgets) == (final.cost, 0)


async def test_a_stream_closed_early_pays_what_it_produced(fake: FakeOpenAI) -> None:
    r = router(fake, budgets=[{"scope": "global", "limit": "1"}])
    stream = await r.acompletion("smart", HI, max_tokens=100, stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    await r.aclose()
    charged, held = await spent(r.budgets)
    assert held == 0
    assert 0 < charged < D("0.0001")


def test_the_blocking_face_holds_and_settles(fake: FakeOpenAI) -> None:
    r = router(fake, budgets=[{"scope": "user", "limit": "0.00005"}])
    answer = r.completion("smart", HI, max_tokens=20, user="ann")
    assert isinstance(answer, ChatResponse)
    with pytest.raises(chatgate.BudgetExceededError):
        r.completion("smart", HI, max_tokens=100, user="ann")
    stream = r.completion("smart", HI, max_tokens=20, user="ann", stream=True)
    assert not isinstance(stream, ChatResponse)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    r.close()
    budgets = r.budgets
    assert budgets is not None
    states = budgets.sync.status(model="smart", user="ann")
    assert states[0].reserved == 0
    assert states[0].spent > answer.cost  # type: ignore[operator]


async def test_a_cache_hit_costs_nothing(fake: FakeOpenAI) -> None:
    r = router(fake, cache=True, budgets=[{"scope": "global", "limit": "1"}])
    first = await r.acompletion("smart", HI, temperature=0, max_tokens=100)
    hit = await r.acompletion("smart", HI, temperature=0, max_tokens=100)
    assert hit.meta.cache_hit
    assert hit.cost == 0
    assert await spent(r.budgets) == (first.cost, 0)


async def test_embeddings_hold_and_settle(fake: FakeOpenAI) -> None:
    r = chatgate.Router(
        [entry("embed", fake, model="text-embedding-3-small")],
        budgets=[{"scope": "global", "limit": "0.000005"}],
    )
    response = await r.aembedding("embed", "four words of input")
    assert response.meta.cost is not None
    assert response.meta.cost > 0
    budgets = r.budgets
    assert budgets is not None
    [state] = await budgets.status(model="embed")
    assert (state.spent, state.reserved) == (response.meta.cost, 0)
    with pytest.raises(chatgate.BudgetExceededError):
        await r.aembedding("embed", "many words " * 10)


def test_bad_budget_settings_are_refused_naming_the_field(fake: FakeOpenAI) -> None:
    with pytest.raises(chatgate.InvalidRequestError) as info:
        router(fake, budgets=[{"scope": "planet", "limit": 1}])
    assert info.value.param == "budgets.scope"
    with pytest.raises(chatgate.InvalidRequestError) as info:
        router(fake, budgets=[{"scope": "user", "limit": -1}])
    assert info.value.param == "budgets.limit"
    with pytest.raises(chatgate.InvalidRequestError) as info:
        router(fake, budgets=["user"])  # type: ignore[list-item]
    assert info.value.param == "budgets"


# --- what a Router call may say --------------------------------------------------------------


async def test_unknown_router_call_parameters_get_the_right_hint(fake: FakeOpenAI) -> None:
    r = router(fake)
    with pytest.raises(chatgate.InvalidRequestError, match="model_list") as info:
        await r.acompletion("smart", HI, api_key="sk-other")  # type: ignore[call-arg]
    assert info.value.param == "api_key"
    with pytest.raises(chatgate.InvalidRequestError, match="did you mean 'temperature'"):
        await r.acompletion("smart", HI, temprature=0)  # type: ignore[call-arg]
    with pytest.raises(chatgate.InvalidRequestError, match="did you mean 'team'"):
        await r.acompletion("smart", HI, teem="red")  # type: ignore[call-arg]
    with pytest.raises(chatgate.InvalidRequestError, match="acompletion_structured"):
        await r.acompletion("smart", HI, max_retries=2)  # type: ignore[call-arg]
    assert chats(fake) == 0


async def test_an_unknown_name_is_refused_before_any_hold_or_lookup(fake: FakeOpenAI) -> None:
    r = router(fake, cache=True, budgets=[{"scope": "global", "limit": "1"}])
    with pytest.raises(chatgate.InvalidRequestError, match="known names: smart") as info:
        await r.acompletion("smrt", HI, max_tokens=10)
    assert info.value.param == "model"
    with pytest.raises(chatgate.InvalidRequestError) as info:
        r.completion("smrt", HI, max_tokens=10)
    assert info.value.param == "model"
    with pytest.raises(chatgate.InvalidRequestError) as info:
        await r.aembedding("smrt", "text")
    assert info.value.param == "model"
    assert await spent(r.budgets) == (0, 0)
    assert fake.requests == []


async def test_a_model_without_a_price_under_a_budget_is_refused(fake: FakeOpenAI) -> None:
    unpriced = {"model": "openai/no-such-model", "api_base": fake.base_url, "api_key": "sk-u"}
    r = chatgate.Router(
        [{"model_name": "odd", "params": unpriced}], budgets=[{"scope": "global", "limit": "1"}]
    )
    with pytest.raises(chatgate.InvalidRequestError, match="has no price") as info:
        await r.acompletion("odd", HI, max_tokens=10)
    assert info.value.param == "model"
    assert fake.requests == []


async def test_two_routers_naming_different_models_alike_never_share_answers(
    fake: FakeOpenAI, process_cache: Cache
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


def embeds(fake: FakeOpenAI) -> int:
    return sum(r.path.endswith("/embeddings") for r in fake.requests)


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
