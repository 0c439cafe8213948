"""Tiered routing through a real `chatgate serve`: the classifier's tier, the response
headers, the spend log's tier and saving, the override header, session stickiness and
escalation on a `length` finish, on an empty streamed answer and on an outage. Two fake
upstreams, one per tier, show who was asked."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.gateway import Gateway, request_json, start_gateway
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    chunk_json,
    completion_json,
    text_stream,
    usage_json,
)

MASTER = "sk-master-tiers"
# list prices (USD per token) of the two tiers' models in the bundled price table
MINI_IN, MINI_OUT = Decimal("0.00000015"), Decimal("0.0000006")
FULL_IN, FULL_OUT = Decimal("0.0000025"), Decimal("0.00001")
SIMPLE = [{"role": "user", "content": "What are your opening hours?"}]
HARD = [
    {
        "role": "user",
        "content": "Refactor this and write tests:\n```python\ndef f(xs):\n    for x in xs:\n"
        "        yield x * 2\n```\nThen explain the complexity step by step and optimise it.",
    }
]


@pytest.fixture(scope="module")
def cheap() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def premium() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    cheap: FakeOpenAI, premium: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("tiers")
    config = {
        "model_list": [
            {
                "model_name": "small",
                "params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": cheap.base_url,
                    "api_key": "k",
                },
            },
            {
                "model_name": "large",
                "params": {"model": "openai/gpt-4o", "api_base": premium.base_url, "api_key": "k"},
            },
        ],
        "router_settings": {
            "num_retries": 0,
            "tiers": [
                {
                    "model_name": "auto",
                    "tiers": ["small", "large"],
                    # features only: this test is about the gateway, not MiniLM
                    "classifier": {"embeddings": "never"},
                    "escalate_on": ["length", "empty", "error"],
                }
            ],
        },
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp / 'g.db'}"},
    }
    with start_gateway(config, tmp) as gw:
        gw.db = tmp / "g.db"  # type: ignore[attr-defined]  # the test's own note on the handle
        yield gw


def ask(gw: Gateway, messages: list[dict[str, str]], key: str = MASTER, **headers: str) -> Any:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as sdk:
        return sdk.chat.completions.with_raw_response.create(
            model="auto",
            messages=messages,
            extra_headers=headers,  # type: ignore[arg-type]
        )


def ask_stream(gw: Gateway) -> tuple[Any, list[Any]]:
    """The response headers (sent before the answer) and every chunk of a streamed answer."""
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0)
    with (
        sdk,
        sdk.chat.completions.with_streaming_response.create(
            model="auto", messages=SIMPLE, stream=True, stream_options={"include_usage": True}
        ) as raw,
    ):
        return raw.headers, list(raw.parse())


def spend_row(gw: Gateway, request_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The spend_log row of ``request_id`` once it is written (off the request path)."""
    db: Path = gw.db  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    while True:
        if db.exists():
            with sqlite3.connect(db) as conn:
                conn.row_factory = sqlite3.Row
                query = "SELECT * FROM spend_log WHERE request_id = ?"
                row = conn.execute(query, (request_id,)).fetchone()
            if row is not None:
                return dict(row)
        assert time.monotonic() < deadline, f"no spend row for {request_id}"
        time.sleep(0.1)


def test_a_simple_question_goes_to_the_cheap_tier_and_records_the_saving(
    gateway: Gateway, cheap: FakeOpenAI, premium: FakeOpenAI
) -> None:
    cheap.script(Reply(json=completion_json("9 to 5", prompt_tokens=1000, completion_tokens=100)))
    before = len(premium.requests)
    raw = ask(gateway, SIMPLE)
    assert raw.parse().choices[0].message.content == "9 to 5"
    assert cheap.last.body["model"] == "gpt-4o-mini"
    assert len(premium.requests) == before
    assert raw.headers["x-chatgate-tier"] == "small"
    assert 0 <= float(raw.headers["x-chatgate-tier-score"]) < 0.35
    saved = (FULL_IN - MINI_IN) * 1000 + (FULL_OUT - MINI_OUT) * 100
    assert Decimal(raw.headers["x-chatgate-saved-usd"]) == saved
    row = spend_row(gateway, raw.headers["x-chatgate-request-id"])
    line = gateway.wait_for_access_line(raw.headers["x-chatgate-request-id"])
    assert (line["tier"], line["tier_score"]) == ("small", row["tier_score"])
    assert row["model"] == "auto"
    assert row["tier"] == "small"
    assert round(row["tier_score"], 3) == float(raw.headers["x-chatgate-tier-score"])
    assert row["saved_pico"] == int(saved * 10**12)


def test_a_coding_task_goes_to_the_premium_tier(
    gateway: Gateway, cheap: FakeOpenAI, premium: FakeOpenAI
) -> None:
    before = len(cheap.requests)
    raw = ask(gateway, HARD)
    assert premium.last.body["model"] == "gpt-4o"
    assert len(cheap.requests) == before
    assert raw.headers["x-chatgate-tier"] == "large"
    assert float(raw.headers["x-chatgate-tier-score"]) >= 0.35
    assert Decimal(raw.headers["x-chatgate-saved-usd"]) == 0
    assert spend_row(gateway, raw.headers["x-chatgate-request-id"])["tier"] == "large"


def test_the_tier_header_overrides_the_classifier(gateway: Gateway, premium: FakeOpenAI) -> None:
    raw = ask(gateway, SIMPLE, **{"x-chatgate-tier": "large"})
    assert premium.last.body["messages"][-1]["content"] == SIMPLE[0]["content"]
    assert raw.headers["x-chatgate-tier"] == "large"
    assert "x-chatgate-tier-score" not in raw.headers  # a header chose, not the classifier
    row = spend_row(gateway, raw.headers["x-chatgate-request-id"])
    assert (row["tier"], row["tier_score"]) == ("large", None)


def test_an_unknown_tier_header_is_a_400_naming_it(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        ask(gateway, SIMPLE, **{"x-chatgate-tier": "gold"})
    assert "x-chatgate-tier" in str(refused.value)
    assert "small, large" in str(refused.value)


def test_a_session_never_drops_back_to_a_cheaper_tier(gateway: Gateway, cheap: FakeOpenAI) -> None:
    session = {"x-chatgate-session": "conv-42"}
    assert ask(gateway, HARD, **session).headers["x-chatgate-tier"] == "large"
    before = len(cheap.requests)
    follow_up = ask(gateway, SIMPLE, **session)
    assert follow_up.headers["x-chatgate-tier"] == "large"
    assert "x-chatgate-tier-score" not in follow_up.headers  # at the top: nothing to classify
    assert len(cheap.requests) == before
    # another conversation asking the same is not held up there
    assert (
        ask(gateway, SIMPLE, **{"x-chatgate-session": "conv-43"}).headers["x-chatgate-tier"]
        == "small"
    )


def test_a_length_finish_on_the_cheap_tier_escalates_to_the_next(
    gateway: Gateway, cheap: FakeOpenAI, premium: FakeOpenAI
) -> None:
    cut = completion_json("9 to", finish_reason="length", prompt_tokens=10, completion_tokens=5)
    whole = completion_json("9 to 5, daily", model="gpt-4o", prompt_tokens=10, completion_tokens=6)
    cheap.script(Reply(json=cut))
    premium.script(Reply(json=whole))
    raw = ask(gateway, SIMPLE)
    assert raw.parse().choices[0].message.content == "9 to 5, daily"
    assert raw.headers["x-chatgate-tier"] == "large"
    # the answer's cost includes the cut-off answer it replaced
    spent = MINI_IN * 10 + MINI_OUT * 5 + FULL_IN * 10 + FULL_OUT * 6
    assert Decimal(raw.headers["x-chatgate-cost"]) == spent
    assert Decimal(raw.headers["x-chatgate-saved-usd"]) == -(MINI_IN * 10 + MINI_OUT * 5)
    row = spend_row(gateway, raw.headers["x-chatgate-request-id"])
    assert row["tier"] == "large"
    assert row["finish_reason"] == "stop"


def test_a_stream_carries_its_tier_and_its_saving_reaches_the_spend_log(
    gateway: Gateway, cheap: FakeOpenAI
) -> None:
    headers, chunks = ask_stream(gateway)
    assert headers["x-chatgate-tier"] == "small"
    request_id = headers["x-chatgate-request-id"]
    usage = chunks[-1].usage
    assert usage is not None
    row = spend_row(gateway, request_id)
    saved = (FULL_IN - MINI_IN) * usage.prompt_tokens + (
        FULL_OUT - MINI_OUT
    ) * usage.completion_tokens
    assert (row["tier"], row["saved_pico"]) == ("small", int(saved * 10**12))


def test_an_empty_stream_escalates_before_the_headers_and_the_log_keeps_both_costs(
    gateway: Gateway, cheap: FakeOpenAI, premium: FakeOpenAI
) -> None:
    """The cheap tier's stream ends without a word: nothing was sent, so the client gets the
    premium tier's answer, its headers name that tier, and the spend log charges both."""
    cheap.script(
        Reply(
            chunks=[
                chunk_json({"role": "assistant", "content": ""}),
                chunk_json({}, finish_reason="stop"),
                chunk_json(usage=usage_json(10, 0), no_choices=True),
            ]
        )
    )
    premium.script(Reply(chunks=text_stream(["rescued"], model="gpt-4o", usage=(10, 1))))
    headers, chunks = ask_stream(gateway)
    assert headers["x-chatgate-tier"] == "large"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "rescued"
    row = spend_row(gateway, headers["x-chatgate-request-id"])
    replaced = MINI_IN * 10
    assert row["tier"] == "large"
    assert row["saved_pico"] == -int(replaced * 10**12)
    assert Decimal(row["cost_pico"]) / 10**12 == FULL_IN * 10 + FULL_OUT * 1 + replaced


def test_an_outage_of_the_cheap_tier_escalates_a_stream(
    gateway: Gateway, cheap: FakeOpenAI, premium: FakeOpenAI
) -> None:
    cheap.script(Reply(status=503, json={"error": {"message": "down", "type": "server_error"}}))
    premium.script(Reply(chunks=text_stream(["up"], model="gpt-4o")))
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER, max_retries=0)
    with sdk:
        stream = sdk.chat.completions.create(model="auto", messages=SIMPLE, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "up"


def test_the_other_routes_know_a_tiered_name(gateway: Gateway, cheap: FakeOpenAI) -> None:
    """/v1/models lists it, /v1/messages (Anthropic's format) routes it, count_tokens counts
    it as its cheapest tier, and /v1/embeddings refuses it with a 400 naming the model, never
    a 500."""
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER, max_retries=0) as sdk:
        assert "auto" in [m.id for m in sdk.models.list()]
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.embeddings.create(model="auto", input="x")
        assert "tiered chat model" in str(refused.value)
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER, max_retries=0)
    with client:
        raw = client.messages.with_raw_response.create(
            model="auto", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
        )
        counted = client.messages.count_tokens(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
    assert counted.input_tokens > 0
    assert raw.headers["x-chatgate-tier"] == "small"
    assert raw.parse().content[0].text == "echo: hello"  # type: ignore[union-attr]


def test_a_key_allowed_the_tiered_name_is_served_by_its_tiers(gateway: Gateway) -> None:
    body = json.dumps({"models": ["auto"]}).encode()
    status, made = request_json(f"{gateway.url}/admin/keys", body=body, key=MASTER)
    assert status == 200, made
    assert ask(gateway, HARD, key=made["key"]).headers["x-chatgate-tier"] == "large"
    with pytest.raises(openai.PermissionDeniedError):  # the tiers themselves are not its
        ask_model(gateway, made["key"], "large")


def ask_model(gw: Gateway, key: str, model: str) -> None:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as sdk:
        sdk.chat.completions.create(model=model, messages=SIMPLE)  # type: ignore[arg-type]
