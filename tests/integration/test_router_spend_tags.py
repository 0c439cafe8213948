"""A Router call's ``spend_tags=``: the tags whose budgets (``scope: tag``) it is held on, in
the blocking face and the embeddings calls too; bounded, and refused before anything is sent
when malformed."""

from __future__ import annotations

import pytest

import chatgate
from chatgate.types import ChatResponse
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.guarded_support import HI, chats, embeds, entry, router

FEATURE_X = {"scope": "tag", "subject": "feature-x", "limit": "0.00005"}


def test_the_blocking_face_holds_on_the_call_s_tag_budget(fake: FakeOpenAI) -> None:
    r = router(fake, budgets=[FEATURE_X])
    answer = r.completion("smart", HI, max_tokens=20, spend_tags=["feature-x"])
    assert isinstance(answer, ChatResponse)
    with pytest.raises(chatgate.BudgetExceededError) as refused:
        r.completion("smart", HI, max_tokens=100, spend_tags=["other", "feature-x"])
    assert refused.value.budget == "tag:feature-x:monthly"
    sent = chats(fake)
    # an unbudgeted tag, or none, holds on nothing: the same call goes through
    assert isinstance(r.completion("smart", HI, max_tokens=100, spend_tags=["other"]), ChatResponse)
    assert isinstance(r.completion("smart", HI, max_tokens=100), ChatResponse)
    assert chats(fake) == sent + 2
    budgets = r.budgets
    assert budgets is not None
    [state] = budgets.sync.status(tags=["feature-x"])
    assert (state.spent, state.reserved) == (answer.cost, 0)
    r.close()


async def test_embeddings_hold_on_their_tag_budget(fake: FakeOpenAI) -> None:
    r = chatgate.Router(
        [entry("embed", fake, model="text-embedding-3-small")],
        budgets=[{"scope": "tag", "subject": "search", "limit": "0.000005"}],
    )
    response = await r.aembedding("embed", "four words of input", spend_tags=["search"])
    budgets = r.budgets
    assert budgets is not None
    [state] = await budgets.status(tags=["search"])
    assert (state.spent, state.reserved) == (response.meta.cost, 0)
    with pytest.raises(chatgate.BudgetExceededError):
        await r.aembedding("embed", "many words " * 10, spend_tags=["search"])
    await r.aembedding("embed", "many words " * 10, spend_tags=["other"])
    assert embeds(fake) == 2


async def test_malformed_spend_tags_are_refused_before_anything_is_sent(fake: FakeOpenAI) -> None:
    r = router(fake, budgets=[FEATURE_X])
    for given in ("feature-x", ["x" * 65], [f"t{n}" for n in range(17)]):
        with pytest.raises(chatgate.InvalidRequestError) as info:
            await r.acompletion("smart", HI, max_tokens=20, spend_tags=given)  # type: ignore[arg-type]
        assert info.value.param == "spend_tags"
    with pytest.raises(chatgate.InvalidRequestError, match="did you mean 'spend_tags'"):
        await r.acompletion("smart", HI, spend_tag=["x"])  # type: ignore[call-arg]
    with pytest.raises(chatgate.InvalidRequestError) as info:
        await r.aembedding("smart", "text", spend_tags=[""])
    assert info.value.param == "spend_tags"
    assert chats(fake) == embeds(fake) == 0


def test_a_tag_budget_without_its_tag_is_refused_naming_the_field(fake: FakeOpenAI) -> None:
    for budget in ({"scope": "tag", "limit": 1}, {"scope": "tag", "subject": "*", "limit": 1}):
        with pytest.raises(chatgate.InvalidRequestError) as info:
            router(fake, budgets=[budget])
        assert info.value.param == "budgets.subject"
