"""Anthropic's 1-hour cache writes (2x input, against 1.25x for 5-minute ones): carried from
the wire into Usage, priced at their own rate, the same streamed or not, and checked against
figures computed by hand from the price page."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import boto3
import pytest
from botocore.config import Config

import chatgate
from chatgate.config import DeploymentParams
from chatgate.cost.calc import cost_of
from chatgate.cost.prices import ModelPrice, Tier, default_table, lookup_price
from chatgate.cost.usage import UsageRecord, token_fields
from chatgate.providers.anthropic.reverse import anthropic_usage
from chatgate.types import PromptTokensDetails, Usage
from tests.fakes import anthropic_server as anth
from tests.fakes import bedrock_server as bed
from tests.fakes.openai_server import Reply
from tests.integration.test_bedrock import bedrock  # noqa: F401  (the fixture)

D = Decimal
HI = [{"role": "user", "content": "hi"}]
SONNET_45 = "anthropic/claude-sonnet-4-5"


def usage(prompt: int, completion: int, read: int, written: int, hour: int | None) -> Usage:
    details = PromptTokensDetails(
        cached_tokens=read, cache_creation_tokens=written, cache_creation_1h_tokens=hour
    )
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=details,
    )


def price(model: str) -> ModelPrice:
    found = lookup_price(model)
    assert found is not None, model
    return found


# 100 fresh, 2000 reads, 1500 writes of which 1000 for an hour, 300 out
MIXED = usage(3600, 300, read=2000, written=1500, hour=1000)


@pytest.mark.parametrize(
    ("model", "used", "expected"),
    [
        # 100 x $3 + 2000 x $0.30 + 500 x $3.75 (5m) + 1000 x $6 (1h) + 300 x $15, per M
        (SONNET_45, MIXED, D("0.013275")),
        # every write for an hour: 100 x $3 + 1500 x $6 + 300 x $15
        (SONNET_45, usage(1600, 300, read=0, written=1500, hour=1500), D("0.0138")),
        # no split reported: all writes at the 5-minute rate (what the API's total means)
        (SONNET_45, usage(3600, 300, read=2000, written=1500, hour=None), D("0.011025")),
        # Sonnet 4 over 200k prompt tokens: the tier's $6 / $22.50 / $0.60 / $7.50 / $12
        (
            "anthropic/claude-sonnet-4",
            usage(210_000, 100, read=0, written=10_000, hour=4000),
            D("1.2") + 6000 * D("0.0000075") + 4000 * D("0.000012") + 100 * D("0.0000225"),
        ),
        # Bedrock's us. Sonnet 4.5: $3.30 / $0.33 / $4.125 / $6.60 / $16.50
        ("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", MIXED, D("0.0146025")),
    ],
)
def test_hand_computed_costs_with_1h_writes(model: str, used: Usage, expected: Decimal) -> None:
    assert cost_of(used, price(model)) == expected


def test_1h_writes_fall_back_to_the_5m_price_then_to_input() -> None:
    five_minutes = ModelPrice(D("0.000003"), D("0.000015"), cache_write=D("0.00000375"))
    # 100 fresh x 3 + 1500 writes x 3.75 (no 1h price) + 300 x 15
    assert cost_of(usage(1600, 300, 0, 1500, 1000), five_minutes) == D("0.010425")
    plain = ModelPrice(D("0.000003"), D("0.000015"))
    assert cost_of(usage(1600, 300, 0, 1500, 1000), plain) == D("0.0093")  # 1600 x 3 + 300 x 15
    # a tier without its own 1h price keeps the row's
    tiered = ModelPrice(
        D("0.000001"),
        D("0.000002"),
        cache_write_1h=D("0.000004"),
        long_context=Tier(above=10, input=D("0.00001"), output=D("0.00002")),
    )
    assert cost_of(usage(20, 0, 0, 10, 10), tiered) == 10 * D("0.00001") + 10 * D("0.000004")


def test_a_1h_count_above_the_writes_is_capped_and_raw_anthropic_usage_works() -> None:
    broken = usage(1600, 300, read=0, written=1500, hour=9999)
    assert cost_of(broken, price(SONNET_45)) == D("0.0138")  # as if all 1500 were 1h
    raw = {"prompt_tokens": 1600, "completion_tokens": 300, "cache_creation_input_tokens": 1500}
    raw["cache_creation"] = {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000}
    # 100 x 3 + 500 x 3.75 + 1000 x 6 + 300 x 15
    assert cost_of(Usage(**raw), price(SONNET_45)) == D("0.012675")


def test_config_takes_litellm_1h_price_name() -> None:
    custom = DeploymentParams(
        model="vllm/cached",
        input_cost_per_token=D("0.000001"),
        output_cost_per_token=D("0.000002"),
        cache_creation_input_token_cost=D("0.00000125"),
        cache_creation_input_token_cost_above_1hr=D("0.000002"),
    ).price()
    assert custom is not None
    assert (custom.cache_write, custom.cache_write_1h) == (D("0.00000125"), D("0.000002"))
    layered = DeploymentParams(
        model=SONNET_45, cache_creation_input_token_cost_above_1hr=D("0.000005")
    ).price()
    assert layered is not None
    assert (layered.cache_write, layered.cache_write_1h) == (D("0.00000375"), D("0.000005"))
    registered = chatgate.register_price("vllm/cached-2", input=1e-06, output=2e-06)
    assert registered.cache_write_1h is None
    with_1h = chatgate.register_price(
        "vllm/cached-3", input=1e-06, output=2e-06, cache_write_1h=2e-06
    )
    assert with_1h.cache_write_1h == D("0.000002")


def test_every_claude_row_prices_1h_writes_at_twice_input() -> None:
    table = default_table()
    rows = [name for name in table.names() if "claude" in name]
    assert len(rows) >= 20
    # Bedrock offers the 1-hour TTL from the 4.5 models on; Sonnet 4 rows fall back.
    without = {n for n in rows if "claude-sonnet-4-2025" in n}
    for name in rows:
        row = price(name)
        if name in without:
            assert row.cache_write_1h is None, name
            continue
        assert row.cache_write_1h == 2 * row.input, name
        if row.long_context is not None:
            assert row.long_context.cache_write_1h == 2 * row.long_context.input, name


# --- through the client and the Anthropic fake ----------------------------------------------


def mixed_message() -> dict[str, Any]:
    used = anth.usage_json(100, 300, cache_read=2000, cache_write=1500, cache_write_1h=1000)
    return anth.message_json("Hello there!", model="claude-sonnet-4-5", usage=used)


async def test_anthropic_stream_and_non_stream_cost_the_same() -> None:
    message = mixed_message()
    with anth.fake_anthropic(Reply(json=message), Reply(chunks=anth.events_for(message))) as fake:
        plain = await chatgate.acompletion(SONNET_45, HI, api_key="sk", api_base=fake.base_url)
        stream = await chatgate.acompletion(
            SONNET_45, HI, stream=True, api_key="sk", api_base=fake.base_url
        )
        streamed = await stream.afinal()
    assert plain.cost == streamed.cost == D("0.013275")
    assert plain.usage == streamed.usage
    assert plain.usage is not None
    assert plain.usage.prompt_tokens_details is not None
    details = plain.usage.prompt_tokens_details
    assert (details.cached_tokens, details.cache_creation_tokens) == (2000, 1500)
    assert details.cache_creation_1h_tokens == 1000
    assert plain.usage.prompt_tokens == 3600
    for answer in (plain, streamed):
        record = UsageRecord.of(answer)  # the spend-log row
        assert (record.cache_write_tokens, record.cache_write_1h_tokens) == (1500, 1000)


def test_sdk_reads_the_fakes_ttl_split() -> None:
    message = mixed_message()
    replies = Reply(json=message), Reply(chunks=anth.events_for(message))
    with (
        anth.fake_anthropic(*replies) as fake,
        anthropic.Anthropic(base_url=fake.base_url, api_key="sk", max_retries=0) as client,
    ):
        out = client.messages.create(model="claude-x", max_tokens=10, messages=HI)
        with client.messages.stream(model="claude-x", max_tokens=10, messages=HI) as stream:
            final = stream.get_final_message()
    for parsed in (out.usage, final.usage):
        assert parsed.cache_creation is not None
        assert parsed.cache_creation.ephemeral_1h_input_tokens == 1000
        assert parsed.cache_creation.ephemeral_5m_input_tokens == 500
        assert parsed.cache_creation_input_tokens == 1500


def test_reverse_usage_emits_the_split_only_when_known() -> None:
    assert anthropic_usage(MIXED) == {
        "input_tokens": 100,
        "output_tokens": 300,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 1500,
        "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000},
    }
    unknown = anthropic_usage(usage(3600, 300, read=2000, written=1500, hour=None))
    assert "cache_creation" not in unknown


# --- Bedrock: Converse's cacheDetails ----------------------------------------------------------

BEDROCK_USAGE = {
    **bed.usage_json(100, 300, cacheReadInputTokens=2000, cacheWriteInputTokens=1500),
    "cacheDetails": [{"ttl": "1h", "inputTokens": 1000}, {"ttl": "5m", "inputTokens": 500}],
}


async def test_bedrock_cache_details_stream_and_non_stream(bedrock: bed.FakeBedrock) -> None:  # noqa: F811
    bedrock.script(
        bed.Reply(json=bed.converse_json("Hello there!", usage=BEDROCK_USAGE)),
        bed.Reply(events=bed.text_events(["Hello", " there!"], usage=BEDROCK_USAGE)),
    )
    model = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    plain = await chatgate.acompletion(model, HI)
    stream = await chatgate.acompletion(model, HI, stream=True)
    streamed = await stream.afinal()
    assert plain.cost == streamed.cost == D("0.0146025")
    assert plain.usage == streamed.usage
    assert plain.usage is not None
    assert plain.usage.prompt_tokens_details is not None
    assert plain.usage.prompt_tokens_details.cache_creation_1h_tokens == 1000
    for answer in (plain, streamed):
        record = UsageRecord.of(answer)  # the spend-log row
        assert (record.cache_write_tokens, record.cache_write_1h_tokens) == (1500, 1000)


@pytest.mark.parametrize(
    ("used", "split"),
    [
        (MIXED, (1500, 1000)),
        (usage(3600, 300, read=2000, written=1500, hour=None), (1500, 0)),  # not reported
        (usage(3600, 300, read=2000, written=1500, hour=9000), (1500, 1500)),  # as cost_of caps
        (usage(3600, 300, read=2000, written=0, hour=None), (0, 0)),
        (None, (0, 0)),
    ],
)
def test_usage_record_token_fields_split_cache_writes(
    used: Usage | None, split: tuple[int, int]
) -> None:
    fields = token_fields(used)
    assert (fields["cache_write_tokens"], fields["cache_write_1h_tokens"]) == split


@pytest.fixture
def boto_client(bedrock: bed.FakeBedrock) -> Iterator[Any]:  # noqa: F811
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=bedrock.url,
        region_name="us-east-1",
        aws_access_key_id=bed.ACCESS_KEY,
        aws_secret_access_key=bed.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )
    yield client
    client.close()


def test_boto3_reads_the_fakes_cache_details(bedrock: bed.FakeBedrock, boto_client: Any) -> None:  # noqa: F811
    bedrock.script(
        bed.Reply(json=bed.converse_json("Hi", usage=BEDROCK_USAGE)),
        bed.Reply(events=bed.text_events(["Hi"], usage=BEDROCK_USAGE)),
    )
    modelId = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    out = boto_client.converse(modelId=modelId, messages=messages)
    assert out["usage"]["cacheDetails"] == BEDROCK_USAGE["cacheDetails"]
    events = list(boto_client.converse_stream(modelId=modelId, messages=messages)["stream"])
    assert events[-1]["metadata"]["usage"]["cacheDetails"] == BEDROCK_USAGE["cacheDetails"]
