"""A Conversation on a Router: a tiered name is a model it can hold, and its summaries, when
written by one of the Router's names, are routed too (fallbacks, budgets charged to the
conversation's user)."""

from __future__ import annotations

from decimal import Decimal

import pytest

import chatgate
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json
from tests.integration.test_memory import sentence

NO_EMBEDDINGS = {"embeddings": "never"}  # the classifier's fast path: no model to load


def priced(fake: FakeOpenAI, model: str) -> dict[str, str]:
    return {
        "model": f"openai/{model}",
        "api_base": fake.base_url,
        "api_key": "sk-upstream-conversation",
        "input_cost_per_token": "0.000001",
        "output_cost_per_token": "0.000001",
    }


def tiered_router(mini: FakeOpenAI, full: FakeOpenAI, backup: FakeOpenAI) -> chatgate.Router:
    return chatgate.Router(
        [
            {"model_name": "mini", "params": priced(mini, "gpt-4o-mini")},
            {"model_name": "full", "params": priced(full, "gpt-4o")},
            {"model_name": "backup", "params": priced(backup, "gpt-4o-mini")},
        ],
        num_retries=0,
        fallbacks=[{"mini": ["backup"]}],
        tiers=[
            {"model_name": "auto", "tiers": ["mini", "full"], "classifier": {"embeddings": "never"}}
        ],
        budgets=[{"scope": "user", "limit": "1", "window": "daily"}],
    )


async def test_a_conversation_holds_a_tiered_name() -> None:
    with FakeOpenAI() as mini, FakeOpenAI() as full, FakeOpenAI() as backup:
        router = tiered_router(mini, full, backup)
        chat = chatgate.Conversation(model="auto", router=router, persist=False, user="ann")
        first = await chat.asend("hello there")
        second = await chat.asend("and thanks")
    assert first.meta.tier == "mini"
    assert second.meta.model_name == "mini"  # the session stays where it was
    assert len(chat.messages) == 4
    assert mini.requests[-1].body["messages"][0] == {"role": "user", "content": "hello there"}
    assert router.budgets is not None
    [state] = await router.budgets.status(model="auto", user="ann")
    assert state.spent == chat.cost


def test_an_unknown_name_is_still_refused_naming_the_routers_names() -> None:
    with FakeOpenAI() as mini, FakeOpenAI() as full, FakeOpenAI() as backup:
        router = tiered_router(mini, full, backup)
        with pytest.raises(chatgate.InvalidRequestError, match="auto") as info:
            chatgate.Conversation(model="smart", router=router, persist=False)
    assert info.value.param == "model"


async def test_summaries_by_a_routers_name_fall_back_and_are_charged_to_the_user() -> None:
    policy = chatgate.Summarize(max_tokens=340, model="mini", summary_max_tokens=40, fold_to=0.6)
    with FakeOpenAI() as mini, FakeOpenAI() as full, FakeOpenAI() as backup:
        router = tiered_router(mini, full, backup)
        chat = chatgate.Conversation(
            model="full", router=router, policy=policy, persist=False, user="bea"
        )
        # the summarizer's first call fails on mini: the router falls back to backup
        mini.script(Reply(status=500, json=error_json("boom", "server_error")))
        backup.script(*(Reply(json=completion_json(f"SUMMARY-{n}")) for n in range(1, 6)))
        for i in range(6):
            await chat.asend(sentence(i))
        summaries = [r.body for r in mini.requests + backup.requests]
    assert len(mini.requests) == 1  # the failed one
    assert summaries[0]["max_tokens"] == 40
    assert "New turns:" in summaries[0]["messages"][1]["content"]
    assert chat.summary is not None
    assert chat.summary.startswith("SUMMARY-")
    assert router.budgets is not None
    spent = sum((s.spent for s in await router.budgets.status(user="bea")), Decimal(0))
    assert spent == chat.cost  # answers and summaries alike
