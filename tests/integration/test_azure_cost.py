"""Azure answers priced without configuration: the deployment name is the operator's, but the
answer names the model that served it (``gpt-4o-2024-08-06``), and that has a list price."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

import chatgate
from chatgate import Router
from chatgate.cost import calc
from chatgate.cost.calc import completion_cost
from tests.fakes.openai_server import Reply, chunk_json, completion_json, text_stream
from tests.integration.test_azure import FakeAzure, azure  # noqa: F401  (the fixture)

HI = [{"role": "user", "content": "hi"}]
SERVED = "gpt-4o-2024-08-06"
# 600 fresh x $2.50/M + 400 cached x $1.25/M + 200 out x $10/M (gpt-4o's list price)
GPT_4O_COST = Decimal("0.004")


def answer(model: str) -> Reply:
    return Reply(
        json=completion_json(
            "Hello there!",
            model=model,
            prompt_tokens=1000,
            completion_tokens=200,
            cached_tokens=400,
        )
    )


def streamed(model: str) -> Reply:
    filters = [{"prompt_index": 0, "content_filter_results": {}}]
    # Azure's first chunk: no choices, no model, only the prompt filter results
    first = {
        **chunk_json(no_choices=True, model=""),
        "usage": None,
        "prompt_filter_results": filters,
    }
    chunks = text_stream(["Hello", " there!"], model=model, usage=(1000, 200, 400))  # type: ignore[arg-type]
    return Reply(chunks=[first, *chunks])


async def test_priced_by_the_model_in_the_answer_streamed_or_not(azure: FakeAzure) -> None:  # noqa: F811
    azure.script(answer(SERVED), streamed(SERVED))
    plain = await chatgate.acompletion("azure/gpt4o-prod", HI)
    stream = await chatgate.acompletion("azure/gpt4o-prod", HI, stream=True)
    final = await stream.afinal()
    assert plain.cost == final.cost == GPT_4O_COST
    assert plain.meta.model == final.meta.model == SERVED
    plain.meta.cost = None  # rebuilt from a log: priced again from provider and model
    assert completion_cost(plain) == GPT_4O_COST


async def test_unknown_served_model_warns_once_with_the_fix(
    azure: FakeAzure,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    served = "gpt-unreleased-2031-01-01"
    azure.script(answer(served), streamed(served), answer(served))
    calc._warned.clear()
    with caplog.at_level(logging.WARNING, logger="chatgate.cost"):
        plain = await chatgate.acompletion("azure/mystery", HI)
        stream = await chatgate.acompletion("azure/mystery", HI, stream=True)
        final = await stream.afinal()
    assert plain.cost is None
    assert final.cost is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "chatgate.cost"]
    assert warnings == [
        f"no price known for azure/mystery (answering as model {served!r}): its cost is None. "
        "Give it one in the config (input_cost_per_token / output_cost_per_token, or "
        "base_model: the price table's model it is billed as) or with "
        f"chatgate.register_price('azure/{served}', input=..., output=...)"
    ]
    chatgate.register_price(f"azure/{served}", input=1e-06, output=2e-06)
    priced = await chatgate.acompletion("azure/mystery", HI)
    assert priced.cost == 1000 * Decimal("0.000001") + 200 * Decimal("0.000002")


async def test_an_answer_without_a_model_warns_and_costs_none(
    azure: FakeAzure,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    azure.script(answer(""))
    calc._warned.clear()
    with caplog.at_level(logging.WARNING, logger="chatgate.cost"):
        response = await chatgate.acompletion("azure/anonymous", HI)
    assert response.cost is None
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "chatgate.cost"]
    assert warning.startswith("no price known for azure/anonymous: its cost is None.")
    assert "base_model" in warning


async def test_a_configured_price_wins_over_the_answers_model(azure: FakeAzure) -> None:  # noqa: F811
    azure.script(answer(SERVED), answer(SERVED))
    own = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
    router = Router(
        [
            {"model_name": "mini", "params": {"model": "azure/a", "base_model": "gpt-4o-mini"}},
            {"model_name": "own", "params": {"model": "azure/b", **own}},
        ]
    )
    # gpt-4o-mini: 600 x $0.15/M + 400 cached x $0.075/M + 200 x $0.60/M
    assert (await router.acompletion("mini", HI)).cost == Decimal("0.00024")
    # 1000 x $1/M (no cached price: cached tokens bill as input) + 200 x $2/M
    assert (await router.acompletion("own", HI)).cost == Decimal("0.0014")
