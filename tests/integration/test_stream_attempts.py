"""Every attempt of a streamed request reaches the spend log, as a whole answer's do: a stream
that failed over before its first chunk, one that broke off after chunks (the attempt the
client saw fail, with its error), a fallback group the key may not use (skipped), on
/v1/chat/completions, /v1/messages and /v1/responses; read back through the admin API's Logs
detail, with no provider key in the row even when the upstream echoed it."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fakes.openai_server import FakeOpenAI, Reply, text_stream
from tests.faults.secret_echo import KEYS, broken_stream, leaks, refused
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-stream-attempts"
ROUTES = ["/v1/chat/completions", "/v1/messages", "/v1/responses"]


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    key = KEYS["openai"]  # what broken_stream / refused echo back
    config = gateway_config(
        deployment("wobbly", upstream, "openai/gpt-4o", api_key=key),
        deployment("fast", upstream, api_key=key),
        master_key=MASTER,
        database=SQLITE,
        # no retries and no cooldowns: each test's attempts are exactly those it scripts
        router={"num_retries": 0, "cooldown_time": 0, "fallbacks": [{"wobbly": ["fast"]}]},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def streamed(
    gw: Gateway,
    route: str,
    model: str,
    key: str = MASTER,
    *,
    stream: bool = True,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """(status, request id, the whole body as the client read it)."""
    if route == "/v1/responses":
        body: dict[str, Any] = {"model": model, "input": "hi", "stream": stream}
    else:
        messages = [{"role": "user", "content": "hi"}]
        body = {"model": model, "messages": messages, "max_tokens": 16, "stream": stream}
    where = urlsplit(gw.url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    try:
        sent = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn.request("POST", route, json.dumps(body).encode(), sent | (headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.headers["x-chatgate-request-id"], resp.read().decode()
    finally:
        conn.close()


def detail(gw: Gateway, request_id: str) -> dict[str, Any]:
    """The request's spend-log row as the Logs detail shows it (waits for the write)."""
    deadline = time.monotonic() + 10
    while True:
        status, body = gw.admin("GET", f"/admin/logs/{request_id}")
        if status == 200 and body["records"]:
            (row,) = body["records"]
            return dict(row)
        assert time.monotonic() < deadline, f"{request_id} never reached the spend log"
        time.sleep(0.05)


def stored_row(database: Path | None, request_id: str) -> str:
    """Everything the database holds for the request, as text."""
    import sqlite3

    assert database is not None
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT * FROM spend_log WHERE request_id = ?", (request_id,))
        return repr(rows.fetchall())


def outcome(attempt: dict[str, Any]) -> tuple[str, str | None, int | None]:
    return attempt["deployment"], attempt["error"], attempt["status_code"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_stream_that_failed_over_before_its_first_chunk(
    gateway: Gateway, upstream: FakeOpenAI, route: str
) -> None:
    upstream.script(refused("openai"), Reply(chunks=text_stream(["Hello", "!"])))
    status, request_id, body = streamed(gateway, route, "wobbly")
    assert status == 200, body
    assert "Hello" in body
    row = detail(gateway, request_id)
    failed, answered = row["attempt_log"]
    assert outcome(failed) == ("wobbly#0", "InternalServerError", 500)
    assert "Incorrect API key provided: ***" in failed["message"]
    assert failed["latency_ms"] > 0
    assert outcome(answered) == ("fast#0", None, None)
    assert answered["latency_ms"] > 0  # to its first chunk
    assert row["attempts"] == 2
    assert row["fallback"] is True
    assert leaks(stored_row(gateway.database_path, request_id)) == []


@pytest.mark.parametrize("route", ROUTES)
def test_a_stream_that_broke_off_after_chunks(
    gateway: Gateway, upstream: FakeOpenAI, route: str
) -> None:
    upstream.script(broken_stream("openai"))  # "Hi", then an error event echoing the key
    status, request_id, body = streamed(gateway, route, "fast")
    assert status == 200, body
    row = detail(gateway, request_id)
    (broke,) = row["attempt_log"]
    assert broke["deployment"] == "fast#0"
    assert broke["error"] == row["error"]  # the error the client saw, on the attempt it came from
    assert broke["error"] is not None
    assert "Incorrect API key provided: ***" in broke["message"]
    assert leaks(stored_row(gateway.database_path, request_id)) == []


@pytest.mark.parametrize("route", ROUTES)
def test_a_stream_that_failed_over_then_broke_off(
    gateway: Gateway, upstream: FakeOpenAI, route: str
) -> None:
    upstream.script(refused("openai"), broken_stream("openai"))
    status, request_id, body = streamed(gateway, route, "wobbly")
    assert status == 200, body
    row = detail(gateway, request_id)
    failed, broke = row["attempt_log"]
    assert outcome(failed) == ("wobbly#0", "InternalServerError", 500)
    assert broke["deployment"] == "fast#0"
    assert broke["error"] is not None
    assert row["attempts"] == 2
    assert leaks(stored_row(gateway.database_path, request_id)) == []


@pytest.mark.parametrize("route", ROUTES)
def test_a_stream_whose_fallback_the_key_may_not_use(
    gateway: Gateway, upstream: FakeOpenAI, route: str
) -> None:
    key = gateway.new_key(models=["wobbly"])
    upstream.script(refused("openai"))
    status, request_id, body = streamed(gateway, route, "wobbly", key)
    assert status >= 500, body
    row = detail(gateway, request_id)
    failed, skipped = row["attempt_log"]
    assert outcome(failed) == ("wobbly#0", "InternalServerError", 500)
    assert skipped["deployment"] == "fast"
    assert skipped["skipped"]
    assert leaks(stored_row(gateway.database_path, request_id)) == []


@pytest.mark.parametrize("route", ROUTES)
def test_a_stream_answered_at_once_stores_no_attempts(
    gateway: Gateway, upstream: FakeOpenAI, route: str
) -> None:
    upstream.script(Reply(chunks=text_stream(["once"])))
    status, request_id, body = streamed(gateway, route, "fast")
    assert status == 200, body
    row = detail(gateway, request_id)
    assert row["attempt_log"] == []
    assert row["attempts"] == 1


# -- a tiered name: the attempts of a tier it escalated from come first ---------------------


@pytest.fixture(scope="module")
def tiered(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    auto = {
        "model_name": "auto",
        "tiers": ["wobbly", "fast"],
        "classifier": {"embeddings": "never"},
        "escalate_on": ["empty", "error"],
    }
    config = gateway_config(
        deployment("wobbly", upstream, "openai/gpt-4o", api_key=KEYS["openai"]),
        deployment("fast", upstream, api_key=KEYS["openai"]),
        master_key=MASTER,
        database=SQLITE,
        router={"num_retries": 0, "cooldown_time": 0, "tiers": [auto]},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def on_tier(gw: Gateway, route: str, stream: bool) -> tuple[int, str, str]:
    """A request to the tiered name that starts on its cheaper tier (the override header)."""
    return streamed(gw, route, "auto", stream=stream, headers={"x-chatgate-tier": "wobbly"})


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("route", ROUTES)
def test_an_escalation_after_a_failed_tier_shows_its_attempts(
    tiered: Gateway, upstream: FakeOpenAI, route: str, stream: bool
) -> None:
    answered_by = [Reply(chunks=text_stream(["Hello"]))] if stream else []  # else: an echo
    upstream.script(refused("openai"), *answered_by)
    status, request_id, body = on_tier(tiered, route, stream)
    assert status == 200, body
    row = detail(tiered, request_id)
    failed, answered = row["attempt_log"]
    assert outcome(failed) == ("wobbly#0", "InternalServerError", 500)
    assert outcome(answered) == ("fast#0", None, None)
    assert row["attempts"] == 2
    assert leaks(stored_row(tiered.database_path, request_id)) == []


@pytest.mark.parametrize("route", ROUTES)
def test_an_escalation_after_an_empty_stream_shows_both_attempts(
    tiered: Gateway, upstream: FakeOpenAI, route: str
) -> None:
    upstream.script(Reply(chunks=text_stream([""])), Reply(chunks=text_stream(["Hello"])))
    status, request_id, body = on_tier(tiered, route, True)
    assert status == 200, body
    assert "Hello" in body
    row = detail(tiered, request_id)
    empty, answered = row["attempt_log"]
    assert (empty["deployment"], empty["error"]) == ("wobbly#0", None)
    assert empty["message"] == "answer escalated to the next tier"
    assert outcome(answered) == ("fast#0", None, None)
    assert row["attempts"] == 2
