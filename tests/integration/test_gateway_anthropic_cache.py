"""The official anthropic SDK against a real `chatgate serve` whose upstream is the Anthropic
fake: prompt-cache usage (reads, 5-minute and 1-hour writes) survives the trip through the
canonical format and back out of /v1/messages, the answer is priced with each TTL's rate, its
spend-log row carries the split that explains that cost, and so do the daily rollup, the
`chatgate spend` report and the admin API."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anthropic
import pytest

from chatgate.cost.budgets import to_pico
from chatgate.cost.prices import ModelPrice, lookup_price
from chatgate.spend_cli import compact
from tests.fakes import anthropic_server as anth
from tests.fakes.gateway import request_json
from tests.fakes.openai_server import Reply
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

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
    config = gateway_config(
        deployment("sonnet", upstream, "anthropic/claude-sonnet-4-5"),
        master_key=MASTER,
        database=SQLITE,
    )
    with serve(config, tmp_path_factory) as gateway:
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


def spend_row(database: Path, request_id: str, timeout_s: float = 20.0) -> sqlite3.Row:
    """A request's spend-log row (written off the request path, a moment after the answer;
    the deadline is generous for a loaded machine, the poll returns as soon as it is there)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.closing(sqlite3.connect(database)) as conn:
            conn.row_factory = sqlite3.Row
            query = "SELECT * FROM spend_log WHERE request_id = ?"
            row: sqlite3.Row | None = conn.execute(query, (request_id,)).fetchone()
        if row is not None:
            return row
        assert time.monotonic() < deadline, f"no spend-log row for {request_id}"
        time.sleep(0.05)


@pytest.mark.parametrize("stream", [False, True])
def test_the_spend_log_row_has_the_split_that_explains_its_cost(
    client: anthropic.Anthropic, upstream: anth.FakeAnthropic, database: Path, stream: bool
) -> None:
    upstream.script(Reply(chunks=anth.events_for(message())) if stream else Reply(json=message()))
    raw = client.messages.with_raw_response.create(
        model="sonnet", max_tokens=64, messages=HI, stream=stream
    )
    if stream:
        with raw.parse() as events:
            list(events)
    row = spend_row(database, raw.headers["x-chatgate-request-id"])
    # the deployment's id, as the library path writes it; who served it in their own columns
    assert row["deployment"] == "sonnet#0"
    assert (row["provider"], row["served_model"]) == ("anthropic", "claude-sonnet-4-5")
    assert raw.headers["x-chatgate-model"] == "anthropic/claude-sonnet-4-5"  # as it was
    assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (1500, 1000)
    assert (row["prompt_tokens"], row["cached_tokens"], row["completion_tokens"]) == (
        3600,
        2000,
        300,
    )
    assert row["cost_pico"] == to_pico(COST)
    assert explained_pico(row) == row["cost_pico"]


def explained_pico(row: sqlite3.Row) -> int:
    """The cost of a spend_log or spend_daily row's tokens at Claude Sonnet 4.5's prices."""
    price = lookup_price("anthropic/claude-sonnet-4-5")
    assert isinstance(price, ModelPrice)
    assert price.cached_input is not None
    assert price.cache_write is not None
    assert price.cache_write_1h is not None
    fresh = row["prompt_tokens"] - row["cached_tokens"] - row["cache_write_tokens"]
    hour = row["cache_write_1h_tokens"]
    explained = (
        fresh * price.input
        + row["cached_tokens"] * price.cached_input
        + (row["cache_write_tokens"] - hour) * price.cache_write
        + hour * price.cache_write_1h
        + row["completion_tokens"] * price.output
    )
    return to_pico(explained)


def test_the_report_cli_admin_api_and_rollup_show_the_cache_tokens_that_explain_the_cost(
    client: anthropic.Anthropic, upstream: anth.FakeAnthropic, gateway: Gateway, database: Path
) -> None:
    upstream.script(Reply(json=message()))
    raw = client.messages.with_raw_response.create(model="sonnet", max_tokens=64, messages=HI)
    spend_row(database, raw.headers["x-chatgate-request-id"])  # its record is written
    url = f"{gateway.url}/admin/spend?by=model&since=1d"
    status, body = request_json(url, method="GET", key=MASTER)
    assert status == 200, body
    api = {r["group"]: r for r in body["data"]}["sonnet"]
    n = api["requests"]  # this module's earlier tests called it too, with the same usage
    assert n >= 1
    tokens = ("prompt_tokens", "cached_tokens", "cache_write_tokens", "cache_write_1h_tokens")
    assert [api[name] for name in (*tokens, "completion_tokens")] == [
        3600 * n,
        2000 * n,
        1500 * n,
        1000 * n,
        300 * n,
    ]
    assert Decimal(api["cost"]) == COST * n
    command = [sys.executable, "-m", "chatgate.cli", "spend", "--config", str(gateway.config_path)]
    command += ["--since", "1d"]
    table = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    lines = table.stdout.splitlines()
    heads = ["model", "(errors)", "tokens", "read", "(1h)", "tokens", "(USD)", "(USD)"]
    assert lines[1].split() == heads  # the last: saved, here by the prompt-cache reads
    price = lookup_price("anthropic/claude-sonnet-4-5")
    assert price is not None
    assert price.cached_input is not None
    saved = 2000 * n * (price.input - price.cached_input)
    assert Decimal(api["prompt_saved"]) == saved
    assert lines[-1] == f"spent {COST * n:.6f} USD; saved {saved:.6f}: prompt caching {saved:.6f}"
    assert lines[3].split() == [
        "sonnet",
        str(n),
        compact(3600 * n),
        compact(2000 * n),
        compact(1500 * n),
        f"({compact(1000 * n)})",
        compact(300 * n),
        f"{COST * n:.6f}",
        f"{saved:.6f}",
    ]
    assert max(map(len, lines)) <= 100
    exact = subprocess.run([*command, "--json"], capture_output=True, check=True, timeout=30)
    assert json.loads(exact.stdout)["data"] == body["data"]
    with urllib.request.urlopen(f"{gateway.url}/ui", timeout=5) as page:
        script = page.read().decode().split('type="module" src="')[1].split('"')[0]
    assets = script.rsplit("/", 1)[0]
    with urllib.request.urlopen(f"{gateway.url}{assets}/logs.js", timeout=5) as js:
        ui = js.read().decode()  # the console's request detail has a line for each
    assert all(f"r.{name}" in ui for name in tokens)
    # each day's rollup row, priced from its token columns, costs what the calls cost
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.row_factory = sqlite3.Row
        days = conn.execute(
            "SELECT day, SUM(requests) AS requests, SUM(cost_pico) AS cost_pico,"
            " SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,"
            " SUM(cache_write_tokens) AS cache_write_tokens,"
            " SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,"
            " SUM(completion_tokens) AS completion_tokens"
            " FROM spend_daily WHERE model = 'sonnet' GROUP BY day"
        ).fetchall()
    assert sum(day["requests"] for day in days) == n
    for day in days:
        assert day["cost_pico"] == to_pico(COST) * day["requests"]
        assert explained_pico(day) == day["cost_pico"]
