"""The library face: ``Router(..., tiers=...)`` serves a tiered name through
``acompletion("auto", ...)`` against fake upstreams, and refuses tiers it cannot serve."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from chatgate.config import ConfigError
from chatgate.errors import APITimeoutError, InvalidRequestError
from chatgate.router import Router
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json

HARD = "Refactor this:\n```python\ndef f(xs):\n    return [x for x in xs]\n```\nThen add tests."


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as cheap, FakeOpenAI() as premium:
        yield cheap, premium


def router(cheap: FakeOpenAI, premium: FakeOpenAI, **tiered: object) -> Router:
    mini = {"model": "openai/gpt-4o-mini", "api_base": cheap.base_url, "api_key": "k"}
    full = {"model": "openai/gpt-4o", "api_base": premium.base_url, "api_key": "k"}
    return Router(
        [{"model_name": "mini", "params": mini}, {"model_name": "full", "params": full}],
        num_retries=0,
        tiers=[{"model_name": "auto", "tiers": ["mini", "full"], **tiered}],
    )


async def test_acompletion_on_a_tiered_name_picks_a_tier_and_stamps_the_answer(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    r = router(*fakes, classifier={"embeddings": "never"})
    assert "auto" in r.model_names
    assert r.reachable("auto") == ["mini", "full"]
    easy = await r.acompletion("auto", [{"role": "user", "content": "hello there"}])
    assert (easy.meta.tier, easy.meta.model_name) == ("mini", "mini")
    assert easy.meta.tier_saved_cost > 0
    hard = await r.acompletion("auto", [{"role": "user", "content": HARD}])
    assert hard.meta.tier == "full"
    assert hard.meta.tier_saved_cost == Decimal(0)
    forced = await r.acompletion("auto", [{"role": "user", "content": HARD}], tier="mini")
    assert (forced.meta.tier, forced.meta.tier_score) == ("mini", None)
    with pytest.raises(InvalidRequestError, match="not a tier"):
        await r.acompletion("auto", [{"role": "user", "content": "x"}], tier="nope")


def test_the_blocking_api_keeps_a_user_on_the_tier_reached(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    r = router(*fakes, classifier={"embeddings": "never"})
    assert r.completion("auto", [{"role": "user", "content": HARD}], user="u1").meta.tier == "full"
    again = r.completion("auto", [{"role": "user", "content": "thanks"}], user="u1")
    assert (again.meta.tier, again.meta.tier_score) == ("full", None)
    other = r.completion("auto", [{"role": "user", "content": "thanks"}], user="u2")
    assert other.meta.tier == "mini"


def test_invalid_json_on_the_cheap_tier_escalates(fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    cheap, premium = fakes
    r = router(cheap, premium, classifier={"embeddings": "never"}, escalate_on=["invalid_json"])
    cheap.script(Reply(json=completion_json("{not json")))
    premium.script(Reply(json=completion_json('{"ok": true}', model="gpt-4o")))
    schema = {"name": "r", "schema": {"type": "object", "required": ["ok"]}}
    answer = r.completion(
        "auto",
        [{"role": "user", "content": "hi"}],
        response_format={"type": "json_schema", "json_schema": schema},
    )
    assert (answer.meta.tier, answer.content) == ("full", '{"ok": true}')


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([{"model_name": "auto", "tiers": ["mini", "gold"]}], "gold, not in the model_list"),
        ([{"model_name": "mini", "tiers": ["mini", "full"]}], "already a model name"),
    ],
)
def test_tiers_the_router_cannot_serve_are_refused(
    fakes: tuple[FakeOpenAI, FakeOpenAI], tiers: list[dict[str, object]], message: str
) -> None:
    params = {"api_base": fakes[0].base_url, "api_key": "k"}
    with pytest.raises(ConfigError, match=message):
        Router(
            [
                {"model_name": "mini", "params": {"model": "openai/gpt-4o-mini", **params}},
                {"model_name": "full", "params": {"model": "openai/gpt-4o", **params}},
            ],
            tiers=tiers,
        )


def test_an_escalation_stays_within_the_calls_one_deadline(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    cheap, premium = fakes
    r = router(cheap, premium, classifier={"embeddings": "never"}, escalate_on=["length"])
    cut = completion_json("cut", finish_reason="length")
    cheap.script(Reply(json=cut, delay_s=0.6))
    premium.script(Reply(json=completion_json("whole", model="gpt-4o"), delay_s=0.6))
    with pytest.raises(APITimeoutError):
        r.completion("auto", [{"role": "user", "content": "hi"}], timeout=1.0)
    premium.replies.clear()


async def test_the_first_call_warms_the_classifier_off_the_event_loop(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    import asyncio
    import threading

    r = router(*fakes)  # the default classifier: features and the static embeddings' vote
    classifier = r.tiered["auto"].classifier
    loop_thread = threading.get_ident()
    warmed_on: list[int] = []
    original = classifier.warm

    def warm() -> None:
        warmed_on.append(threading.get_ident())
        original()

    classifier.warm = warm  # type: ignore[method-assign]
    answers = await asyncio.gather(
        *(r.acompletion("auto", [{"role": "user", "content": "hello"}]) for _ in range(3))
    )
    assert [a.meta.tier for a in answers] == ["mini"] * 3
    assert warmed_on
    assert loop_thread not in warmed_on
    assert not classifier.warm_needed
