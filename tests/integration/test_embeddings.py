"""chatgate.embedding / aembedding against the fake OpenAI upstream, and the gateway's
/v1/embeddings driven by the official openai SDK."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest

import chatgate
from chatgate.errors import InvalidRequestError, RateLimitError
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI, Reply, embedding_vector, error_json
from tests.gateway_harness import Gateway, deployment, gateway_config, serve
from tests.integration.test_gateway_keys import MASTER, new_key, spend_rows
from tests.integration.test_router import dead_base

KEY = "sk-upstream-embed-secret-4242"


def test_embedding_floats(fake: FakeOpenAI) -> None:
    out = chatgate.embedding(
        "openai/text-embedding-3-small", ["a b", "c"], api_key=KEY, api_base=fake.base_url
    )
    assert out.vectors == [embedding_vector("a b"), embedding_vector("c")]
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.total_tokens) == (3, 3)
    assert out.meta.provider == "openai"
    assert out.meta.request_id == "req_fake_1"
    assert fake.last.headers["Authorization"] == f"Bearer {KEY}"
    assert fake.last.body == {"model": "text-embedding-3-small", "input": ["a b", "c"]}
    assert out.meta.cost == Decimal("0.00000006")  # 3 tokens at the list $0.02 / 1M


@pytest.mark.parametrize(
    ("model", "per_million"),
    [
        ("openai/text-embedding-3-large", "0.13"),
        ("openai/text-embedding-ada-002", "0.1"),
        ("mistral/mistral-embed", "0.1"),
    ],
)
def test_embedding_models_are_priced_out_of_the_box(
    fake: FakeOpenAI, model: str, per_million: str
) -> None:
    out = chatgate.embedding(model, "a b c d", api_key=KEY, api_base=fake.base_url)
    assert out.usage is not None
    assert out.meta.cost == out.usage.prompt_tokens * Decimal(per_million) / 1_000_000


async def test_aembedding_base64_passes_through(fake: FakeOpenAI) -> None:
    out = await chatgate.aembedding(
        "openai/text-embedding-3-small",
        "hello",
        api_key=KEY,
        api_base=fake.base_url,
        encoding_format="base64",
        dimensions=4,
    )
    encoded = out.data[0].embedding
    assert isinstance(encoded, str)
    decoded = struct.unpack("<4f", base64.b64decode(encoded))
    assert decoded == pytest.approx(embedding_vector("hello", 4), rel=1e-6)
    assert fake.last.body["encoding_format"] == "base64"
    assert fake.last.body["dimensions"] == 4


def test_embedding_errors(fake: FakeOpenAI) -> None:
    fake.script(
        Reply(status=429, json=error_json(f"slow {KEY}", "rate"), headers={"retry-after": "2"})
    )
    with pytest.raises(RateLimitError) as info:
        chatgate.embedding("openai/m", "x", api_key=KEY, api_base=fake.base_url)
    assert info.value.retry_after == 2
    assert KEY not in str(info.value)
    with pytest.raises(InvalidRequestError, match="'anthropic'") as unsupported:
        chatgate.embedding("anthropic/claude-3-5-haiku", "x", api_key="k")
    assert unsupported.value.param == "model"
    with pytest.raises(InvalidRequestError, match="dimensions"):
        chatgate.embedding("openai/m", "x", api_key=KEY, api_base=fake.base_url, dimensions=0)


def test_gemini_embeddings_through_batch_embed_contents() -> None:
    with FakeGemini() as gem:
        out = chatgate.embedding(
            "gemini/text-embedding-004", ["a b", "c"], api_key="gk", api_base=gem.base_url
        )
        assert out.vectors == [embedding_vector("a b"), embedding_vector("c")]
        assert gem.last.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
        assert len(gem.last.body["requests"]) == 2


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture(scope="module")
def flaky() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


PRICE = {"input_cost_per_token": "0.000001", "output_cost_per_token": "0"}


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAI,
    gemini: FakeGemini,
    flaky: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("pair", flaky, "openai/e-flaky", api_key=KEY, **PRICE),
        deployment("pair", upstream, "openai/e-steady", api_key=KEY, **PRICE),
        deployment("lonely", dead_base(), "openai/e-dead", api_key=KEY),
        deployment("dead-end", dead_base(), "openai/e-dead", api_key=KEY),
        deployment("priced", upstream, "openai/e-priced", api_key=KEY, **PRICE),
        deployment("embed", upstream, "openai/text-embedding-3-small", api_key=KEY),
        deployment("gecko", gemini, "gemini/text-embedding-004", api_key="gk"),
        {"model_name": "claude", "params": {"model": "anthropic/claude-3-5-haiku", "api_key": "k"}},
        master_key=MASTER,
        router={
            "routing_strategy": "round-robin",  # "pair" tries flaky first
            "fallbacks": [{"lonely": ["embed"]}],
            "retry_base_delay": 0.01,
        },
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def test_gateway_embeddings_with_the_openai_sdk(gateway: Gateway, upstream: FakeOpenAI) -> None:
    with gateway.openai_client() as client:
        check_embeddings(client, gateway, upstream)


def check_embeddings(client: openai.OpenAI, gateway: Gateway, upstream: FakeOpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="embed", input=["x y z", "w"])
    out = raw.parse()  # the SDK asked for base64 and decoded what the gateway passed through
    assert upstream.last.body["encoding_format"] == "base64"
    assert out.data[1].embedding == pytest.approx(embedding_vector("w"), rel=1e-6)
    assert out.usage.prompt_tokens == 4
    assert raw.headers["x-chatgate-model"] == "openai/text-embedding-3-small"
    line = gateway.wait_for_access_line(raw.headers["x-chatgate-request-id"])
    assert (line["route"], line["model"], line["prompt_tokens"]) == ("/v1/embeddings", "embed", 4)
    floats = client.embeddings.create(model="embed", input="w", encoding_format="float")
    assert floats.data[0].embedding == embedding_vector("w")
    # Gemini: the gateway packs the floats as base64 for the SDK, which unpacks them again
    gecko = client.embeddings.create(model="gecko", input=["p q"], dimensions=4)
    assert gecko.data[0].embedding == pytest.approx(embedding_vector("p q", 4), rel=1e-6)


def test_gateway_embeddings_errors(gateway: Gateway) -> None:
    with gateway.openai_client() as client:
        check_embedding_errors(client, gateway)


def check_embedding_errors(client: openai.OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError, match="'anthropic'") as unsupported:
        client.embeddings.create(model="claude", input="x")
    assert unsupported.value.param == "model"
    with pytest.raises(openai.NotFoundError, match="embed"):
        client.embeddings.create(model="missing", input="x")
    with (
        gateway.openai_client("bad") as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.embeddings.create(model="embed", input="x")
    assert KEY not in gateway.log_text()


def test_gateway_embeddings_fail_over_like_chat(
    gateway: Gateway, flaky: FakeOpenAI, upstream: FakeOpenAI
) -> None:
    flaky.script(Reply(status=500, json=error_json("boom", "server_error")))
    with gateway.openai_client() as client:
        raw = client.embeddings.with_raw_response.create(model="pair", input=["x y z"])
        out = raw.parse()
        assert out.data[0].embedding == pytest.approx(embedding_vector("x y z"), rel=1e-6)
        assert raw.headers["x-chatgate-attempts"] == "2"
        assert raw.headers["x-chatgate-model"] == "openai/e-steady"
        assert Decimal(raw.headers["x-chatgate-cost"]) == Decimal("0.000003")  # 3 tokens
        assert (len(flaky.requests), upstream.last.body["model"]) == (1, "e-steady")
        line = gateway.wait_for_access_line(raw.headers["x-chatgate-request-id"])
        assert (line["model"], line["attempts"]) == ("pair", 2)
        # a group with no live deployment falls back to "embed" after its retries
        fell = client.embeddings.with_raw_response.create(model="lonely", input="w")
        assert fell.parse().data[0].embedding == pytest.approx(embedding_vector("w"), rel=1e-6)
        assert fell.headers["x-chatgate-attempts"] == "4"
        assert fell.headers["x-chatgate-model"] == "openai/text-embedding-3-small"
        ids = client.embeddings.create(model="embed", input=[1, 2, 3], encoding_format="float")
        assert len(ids.data) == 3  # token ids are counted as they are, not as text
        # no deployment answers and nothing to fall back to: the error says how often it tried
        with pytest.raises(openai.APIStatusError) as failed:
            client.embeddings.create(model="dead-end", input="w")
        assert failed.value.status_code == 502
        assert failed.value.response.headers["x-chatgate-attempts"] == "3"


def test_gateway_embeddings_settle_the_budget_with_the_actual_cost(gateway: Gateway) -> None:
    # The hold counts 8 tokens (tiktoken) at $1/M; the fake reports 1 (one word): each call
    # holds $0.000008 and costs $0.000001, so a $0.0000105 budget pays for three calls.
    secret, record = new_key(gateway, budget="0.0000105")
    word = "Pneumonoultramicroscopic"
    with gateway.openai_client(secret) as client:
        costs = []
        with pytest.raises(openai.APIStatusError) as refused:
            for _ in range(6):
                raw = client.embeddings.with_raw_response.create(model="priced", input=word)
                costs.append(Decimal(raw.headers["x-chatgate-cost"]))
    assert refused.value.status_code == 402
    assert costs == [Decimal("0.000001")] * 3
    row = spend_rows(gateway, "key", record["key_id"], requests=4)
    assert Decimal(row["cost"]) == Decimal("0.000003")
    assert row["prompt_tokens"] == 3
