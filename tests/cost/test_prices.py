"""The price table and the cost function, checked against hand-computed figures."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

import chatgate
from chatgate.config import ConfigError, DeploymentParams
from chatgate.cost import calc
from chatgate.cost.calc import cost_of, price_of, upper_bound
from chatgate.cost.prices import FREE, ModelPrice, PriceTable, default_table, lookup_price
from chatgate.providers.registry import resolve_deployment
from chatgate.types import CompletionTokensDetails, PromptTokensDetails, Usage

D = Decimal


def usage(
    prompt: int, completion: int, cached: int = 0, written: int = 0, reasoning: int = 0
) -> Usage:
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=cached, cache_creation_tokens=written
        ),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning),
    )


def price(model: str) -> ModelPrice:
    found = lookup_price(model)
    assert found is not None, model
    return found


def test_bundled_table_is_dated_and_covers_the_main_providers() -> None:
    table = default_table()
    assert table.updated == "2026-11-22"
    assert len(table) >= 60
    for name in (
        "openai/gpt-4o",
        "openai/gpt-5.5",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-pro",
        "deepseek/deepseek-v4-flash",
        "groq/openai/gpt-oss-120b",
        "mistral/mistral-large-latest",
        "xai/grok-4.3",
        "bedrock/us.anthropic.claude-sonnet-4-6",
    ):
        assert name in table
    gpt4o = price("gpt-4o")
    assert (gpt4o.context_window, gpt4o.max_output) == (128000, 16384)
    assert (gpt4o.tools, gpt4o.vision, gpt4o.json_schema) == (True, True, True)


def test_lookup_by_alias_date_suffix_and_free_provider() -> None:
    assert price("anthropic/claude-sonnet-4-20250514") is price("anthropic/claude-sonnet-4")
    assert price("gpt-4o-2024-11-20") is price("openai/gpt-4o")
    assert price("deepseek/deepseek-chat") is price("deepseek/deepseek-v4-flash")
    assert price("local/smollm2-135m") is FREE
    assert lookup_price("openai/not-a-model") is None
    assert lookup_price("vllm/my-model") is None  # self-hosted costs are the operator's to set


@pytest.mark.parametrize(
    ("model", "used", "expected"),
    [
        # 600 fresh x $2.50/M + 400 cached x $1.25/M + 200 out x $10/M
        ("openai/gpt-4o", usage(1000, 200, cached=400), D("0.004")),
        # 100 fresh x $3/M + 2000 reads x $0.30/M + 500 writes x $3.75/M + 300 out x $15/M
        (
            "anthropic/claude-sonnet-4-5",
            usage(2600, 300, cached=2000, written=500),
            D("0.007275"),
        ),
        # reasoning tokens are output tokens: 100 x $2/M + 500 x $8/M
        ("openai/o3", usage(100, 500, reasoning=400), D("0.0042")),
        # Gemini 2.5 Pro under 200k: 1000 x $1.25/M + 1000 x $10/M
        ("gemini/gemini-2.5-pro", usage(1000, 1000, reasoning=600), D("0.01125")),
        # over 200k the whole call moves to the long-context prices: $2.50 / $15
        ("gemini/gemini-2.5-pro", usage(250_000, 1000, reasoning=600), D("0.64")),
        # cache reads on gpt-5.5: 1000 x $5/M + 9000 x $0.50/M + 100 x $30/M
        ("openai/gpt-5.5", usage(10_000, 100, cached=9000), D("0.0125")),
        # Haiku 4.5: 1000 writes x $1.25/M + 10 out x $5/M
        ("anthropic/claude-haiku-4-5", usage(1000, 10, written=1000), D("0.00130")),
        ("local/any", usage(5000, 5000), D(0)),
    ],
)
def test_hand_computed_costs(model: str, used: Usage, expected: Decimal) -> None:
    assert cost_of(used, price(model)) == expected


def test_deepseek_cache_hits_from_usage_extras() -> None:
    wire = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_cache_hit_tokens": 800}
    # 200 x $0.14/M + 800 x $0.0028/M + 100 x $0.28/M
    assert cost_of(Usage(**wire), price("deepseek/deepseek-v4-flash")) == D("0.00005824")
    anthropic_extras = {"prompt_tokens": 1500, "completion_tokens": 0}
    anthropic_extras["cache_creation_input_tokens"] = 1000
    # 500 fresh x $3/M + 1000 writes x $3.75/M
    assert cost_of(Usage(**anthropic_extras), price("anthropic/claude-sonnet-4-5")) == D("0.00525")


def test_batch_discount_and_separate_reasoning_price() -> None:
    assert cost_of(usage(1000, 200, cached=400), price("gpt-4o"), batch=True) == D("0.002")
    thinker = ModelPrice(D("0.000001"), D("0.000002"), reasoning=D("0.000004"))
    assert cost_of(usage(10, 30, reasoning=20), thinker) == D(
        "0.000110"
    )  # 10 in + 10 out + 20 x 4 reasoning


def test_upper_bound_and_estimate_cost() -> None:
    messages = [{"role": "user", "content": "This late pivot means we don't have time."}]
    prompt = chatgate.count_tokens("gpt-4o", messages).tokens
    estimate = chatgate.estimate_cost("gpt-4o", messages, max_output_tokens=100)
    assert estimate == prompt * D("0.0000025") + 100 * D("0.00001")
    default = chatgate.estimate_cost("gpt-4o", messages)  # the model's max output: 16384
    assert default == prompt * D("0.0000025") + 16384 * D("0.00001")
    assert chatgate.estimate_cost("openai/unknown-model", messages, 10) is None
    long = upper_bound(price("gemini/gemini-2.5-pro"), 300_000, 10)
    assert long == 300_000 * D("0.0000025") + 10 * D("0.000015")


def test_a_budget_hold_covers_a_prompt_written_to_the_cache_for_an_hour() -> None:
    """Cache writes cost more than plain input, so the hold prices the prompt at the highest
    rate: no answer, whatever the provider caches, can cost more than was held."""
    claude = ModelPrice(
        D("0.000003"), D("0.000015"), cache_write=D("0.00000375"), cache_write_1h=D("0.000006")
    )
    hold = upper_bound(claude, 1000, 10)
    assert hold == 1000 * D("0.000006") + 10 * D("0.000015")
    written_1h = Usage(
        prompt_tokens=1000,
        completion_tokens=10,
        total_tokens=1010,
        prompt_tokens_details=PromptTokensDetails(
            cache_creation_tokens=1000, cache_creation_1h_tokens=1000
        ),
    )
    assert cost_of(written_1h, claude) == hold
    assert upper_bound(claude, 1000, 10, cache_writes=False) == 1000 * D("0.000003") + 10 * D(
        "0.000015"
    )
    plain = ModelPrice(D("0.000001"), D("0.000002"))
    assert upper_bound(plain, 100, 10) == 100 * D("0.000001") + 10 * D("0.000002")


def test_unknown_model_costs_none_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    deployment = resolve_deployment("vllm/my-llama", api_base="http://127.0.0.1:9/v1")
    calc._warned.discard("vllm/my-llama")
    with caplog.at_level(logging.WARNING, logger="chatgate.cost"):
        assert price_of(deployment) is None
        assert price_of(deployment) is None
    warnings = [r for r in caplog.records if "no price known for vllm/my-llama" in r.message]
    assert len(warnings) == 1
    assert "free: true" in warnings[0].message


def test_config_overrides_use_litellm_names() -> None:
    custom = DeploymentParams(
        model="vllm/my-llama", input_cost_per_token=1e-07, output_cost_per_token=2e-07
    ).price()
    assert custom is not None
    assert (custom.input, custom.output) == (D("1E-7"), D("2E-7"))
    layered = DeploymentParams(model="openai/gpt-4o", output_cost_per_token=0.00002).price()
    assert layered is not None
    assert (layered.input, layered.output, layered.cached_input) == (
        D("0.0000025"),
        D("0.00002"),
        D("0.00000125"),
    )
    assert DeploymentParams(model="vllm/x", free=True).price() is FREE
    azure = DeploymentParams(model="azure/prod-4o", base_model="openai/gpt-4o").price()
    assert azure is price("openai/gpt-4o")
    assert DeploymentParams(model="openai/gpt-4o").price() is None
    with pytest.raises(ConfigError, match="output_cost_per_token"):
        DeploymentParams(model="vllm/x", input_cost_per_token=1e-07).price()
    with pytest.raises(ConfigError, match="base_model 'openai/nope'"):
        DeploymentParams(model="azure/x", base_model="openai/nope").price()


def test_register_price_and_own_tables() -> None:
    registered = chatgate.register_price("vllm/house-model", input=1e-06, output=3e-06)
    assert lookup_price("vllm/house-model") is registered
    assert registered.input == D("0.000001")
    with pytest.raises(ValueError, match="give output"):
        chatgate.register_price("vllm/other", input=1e-06)
    table = PriceTable({"openai/x": ModelPrice(D(1), D(2))})
    assert table.lookup("x") is not None
    assert table.lookup("openai/x-2024-01-01") is table.lookup("x")
