"""The official anthropic SDK against a real `chatgate serve` whose upstream is the Anthropic
fake: prompt-cache usage (reads, 5-minute and 1-hour writes) survives the trip through the
canonical format and back out of /v1/messages, and the answer is priced with each TTL's rate."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import anthropic
import pytest

from tests.fakes import anthropic_server as anth
from tests.fakes.gateway import Gateway, start_gateway
from tests.fakes.openai_server import Reply

MASTER = "sk-master-cache-ttl-7"
HI = [{"role": "user", "content": "hi"}]
# 100 fresh x $3 + 2000 reads x $0.30 + 500 5m writes x $3.75 + 1000 1h writes x $6
# + 300 out x $15, per million tokens (Claude Sonnet 4.5)
COST = Decimal("0.013275")


@pytest.fixture(scope="module")
def upstream() -> Iterator[anth.FakeAnthropic]:
    with anth.FakeAnthropic() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="module")
def gateway(
    upstream: anth.FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    config = {
        "model_list": [
            {
                "model_name": "sonnet",
                "params": {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_base": upstream.base_url,
                    "api_key": "up-key",
                },
            }
        ],
        "general_settings": {"master_key": MASTER},
    }
    with start_gateway(config, tmp_path_factory.mktemp("gwc")) as gateway:
        yield gateway


@pytest.fixture
def client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=MASTER, max_retries=0) as c:
        yield c


def message() -> dict[str, object]:
    used = anth.usage_json(100, 300, cache_read=2000, cache_write=1500, cache_write_1h=1000)
    return anth.message_json("Hello there!", model="claude-sonnet-4-5", usage=used)


def test_non_stream_usage_split_and_cost(
    client: anthropic.Anthropic, upstream: anth.FakeAnthropic
) -> None:
    upstream.script(Reply(json=message()))
    raw = client.messages.with_raw_response.create(model="sonnet", max_tokens=64, messages=HI)
    out = raw.parse()
    assert out.usage.input_tokens == 100
    assert out.usage.cache_read_input_tokens == 2000
    assert out.usage.cache_creation_input_tokens == 1500
    assert out.usage.cache_creation is not None
    assert out.usage.cache_creation.ephemeral_5m_input_tokens == 500
    assert out.usage.cache_creation.ephemeral_1h_input_tokens == 1000
    assert Decimal(raw.headers["x-chatgate-cost"]) == COST


def test_stream_usage_split_and_cost(
    client: anthropic.Anthropic, upstream: anth.FakeAnthropic, gateway: Gateway
) -> None:
    upstream.script(Reply(chunks=anth.events_for(message())))
    raw = client.messages.with_raw_response.create(
        model="sonnet", max_tokens=64, messages=HI, stream=True
    )
    request_id = raw.headers["x-chatgate-request-id"]
    with raw.parse() as stream:
        events = list(stream)
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.usage.cache_creation_input_tokens == 1500
    assert delta.usage.cache_read_input_tokens == 2000
    # Anthropic's message_delta has no cache_creation field: the SDK keeps ours as an extra
    assert (delta.usage.model_extra or {})["cache_creation"] == {
        "ephemeral_5m_input_tokens": 500,
        "ephemeral_1h_input_tokens": 1000,
    }
    line = gateway.wait_for_access_line(request_id)
    assert Decimal(line["cost_usd"]) == COST
