"""``n`` choices: each may use the whole output cap, so the hold is n times it; and ``n`` has a
ceiling (``general_settings.max_n``), a 400 naming ``n`` above it, on every route that has it.
Through a real `chatgate serve` on SQLite budgets (the arithmetic does not depend on the store:
tests/faults/test_budget_fallbacks.py races the stores)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI
from tests.faults.budget_support import (
    DEAR,
    HI,
    LIMIT,
    MAX_TOKENS,
    counters,
    gateway_config,
    new_key,
    post_many,
    script_full_answers,
)
from tests.gateway_harness import Gateway, serve


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def gateway(db: str, flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path) -> Iterator[Gateway]:
    with serve(gateway_config(db, flaky, dear), tmp_path) as gw:
        yield gw


def post(gw: Gateway, path: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
    return request_json(f"{gw.url}{path}", body=json.dumps(body).encode(), key=key)


def test_n_above_max_n_is_a_400_naming_n_on_every_route(
    db: str, flaky: FakeOpenAI, dear: FakeOpenAI, tmp_path: Path
) -> None:
    with serve(gateway_config(db, flaky, dear, max_n=4), tmp_path) as gw:
        refused_everywhere(gw, dear)


def refused_everywhere(gateway: Gateway, dear: FakeOpenAI) -> None:
    secret, _ = new_key(gateway, budget="1000")
    chat = {"model": "dear", "messages": HI, "max_tokens": 5}
    status, body = post(gateway, "/v1/chat/completions", {**chat, "n": 5}, secret)
    assert status == 400
    assert body["error"]["param"] == "n"
    assert "max_n=4" in body["error"]["message"]
    # the Responses API has no n: asking for one is refused, naming it
    status, body = post(gateway, "/v1/responses", {"model": "dear", "input": "hi", "n": 2}, secret)
    assert status == 400
    assert body["error"]["param"] == "n"
    assert dear.requests == []
    status, body = post(gateway, "/v1/chat/completions", {**chat, "n": 4}, secret)
    assert status == 200, body
    assert dear.last.body["n"] == 4
    # the Messages API has no n either, and an Anthropic message holds one answer: for an
    # OpenAI-format backend it is dropped (providers/anthropic/reverse_params.py), never sent
    status, body = post(gateway, "/v1/messages", {**chat, "n": 5}, secret)
    assert status == 200, body
    assert "n" not in dear.last.body


def test_the_default_max_n_is_16(gateway: Gateway) -> None:
    secret, _ = new_key(gateway, budget="1000")
    body = {"model": "dear", "messages": HI, "max_tokens": 5}
    assert post(gateway, "/v1/chat/completions", {**body, "n": 16}, secret)[0] == 200
    status, refused = post(gateway, "/v1/chat/completions", {**body, "n": 17}, secret)
    assert status == 400
    assert refused["error"]["param"] == "n"


@pytest.mark.parametrize("path", ["/v1/chat/completions"])
def test_the_hold_is_n_times_the_output_cap(
    gateway: Gateway, db: str, dear: FakeOpenAI, path: str
) -> None:
    calls, n = 20, 4
    script_full_answers(dear, calls, n=n)  # every choice uses the whole cap
    secret, key_id = new_key(gateway, models=["dear"])
    body = {"model": "dear", "messages": HI, "max_tokens": MAX_TOKENS, "n": n}
    statuses = asyncio.run(post_many(gateway.url, secret, [body] * calls, path))
    spent, reserved = asyncio.run(counters(db, key_id))
    assert set(statuses) == {200, 402}
    assert reserved == 0
    assert spent <= LIMIT
    assert spent == statuses.count(200) * (8 + n * MAX_TOKENS) * Decimal(DEAR)
