"""The pure parts of budget holds: the worst case of n choices, the groups a routed call may
reach, the hold TTL and how often holds are maintained, and the two settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chatgate import config as config_module
from chatgate.cost.budgets import HOLD_TTL_MARGIN_S, Budgets, hold_ttl_for
from chatgate.cost.prices import ModelPrice
from chatgate.router import Router

D = Decimal
HI = [{"role": "user", "content": "hi"}]
PRICE = ModelPrice(input=D("0.000001"), output=D("0.00001"))


def test_n_choices_hold_n_times_the_output_and_the_prompt_once() -> None:
    budgets = Budgets([])
    one = budgets.worst_case("openai/gpt-4o", HI, max_tokens=100, price=PRICE)
    four = budgets.worst_case("openai/gpt-4o", HI, max_tokens=100, price=PRICE, n=4)
    assert four - one == 3 * 100 * PRICE.output  # the output cap three more times, no more


def entry(name: str) -> dict[str, object]:
    return {"model_name": name, "params": {"model": f"openai/{name}-model", "api_key": "k"}}


def test_reachable_follows_every_kind_of_fallback_the_caller_may_use() -> None:
    router = Router(
        [entry(n) for n in ("a", "b", "c", "d", "e", "f")],
        fallbacks=[{"a": ["b", "c"]}, {"b": ["f"]}],  # b's own fallbacks: not from a call to a
        context_window_fallbacks=[{"b": ["d"]}, {"c": ["e"]}],
        content_policy_fallbacks=[{"d": ["a"]}],
    )
    assert router.reachable("a") == ["a", "b", "c", "d", "e"]
    assert router.reachable("a", {"a", "c", "d", "e"}.__contains__) == ["a", "c", "e"]
    assert router.reachable("a", {"b"}.__contains__) == ["a", "b"]  # a itself: always
    assert router.reachable("f") == ["f"]


def test_hold_ttl_and_maintenance_period() -> None:
    assert hold_ttl_for(600) == 600 + HOLD_TTL_MARGIN_S
    assert Budgets([], reservation_ttl_s=8).maintain_every_s == 2
    assert Budgets([], reservation_ttl_s=3600).maintain_every_s == 30  # at most every 30 s
    assert Budgets([], reservation_ttl_s=1).maintain_every_s == 0.25


def test_max_n_and_hold_ttl_settings() -> None:
    general = config_module.parse({}).general_settings
    assert (general.max_n, general.budget_hold_ttl_s) == (16, None)
    parsed = config_module.parse({"general_settings": {"max_n": 4, "budget_hold_ttl_s": 120}})
    assert (parsed.general_settings.max_n, parsed.general_settings.budget_hold_ttl_s) == (4, 120)
    for bad in ({"max_n": 0}, {"max_n": 129}, {"budget_hold_ttl_s": 0.5}):
        with pytest.raises(config_module.ConfigError) as refused:
            config_module.parse({"general_settings": bad})
        assert next(iter(bad)) in refused.value.message
