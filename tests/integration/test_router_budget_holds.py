"""``Router(budgets=...)`` against the fake OpenAI upstream: every call of the Router holds
its worst case, then settles, releases or is charged, counted by the requests the upstream
received and by the budgets' own counters."""

from __future__ import annotations

import asyncio

import pytest

import chatgate
from chatgate.cost.budgets import Budget
from chatgate.types import ChatResponse
from tests.clock import wait_until
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json
from tests.integration.guarded_support import (
    DEAR,
    HI,
    D,
    chats,
    entry,
    router,
    spent,
)


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
    # sent, and waiting for the answer the fake holds back 5 s
    await wait_until(lambda: chats(fake) == 1, what="the call reaching the upstream")
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
