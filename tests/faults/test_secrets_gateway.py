"""No provider key leaves a running `chatgate serve`, whatever the upstream echoes back.

Every route (/v1/chat/completions, /v1/messages, /v1/responses) x whole / stream, behind an
OpenAI-format and an Anthropic upstream that echo their key in the error body and in the
response headers: refused before the answer starts, and broken off mid-stream by an error
event. The whole HTTP answer (status line, headers, body, every SSE event), the gateway's log
(access lines and warnings) and the spend-log row are searched for any 8-character piece of
a key."""

from __future__ import annotations

import http.client
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fakes import anthropic_server as anth
from tests.fakes.openai_server import FakeOpenAI
from tests.faults.secret_echo import KEYS, broken_stream, leaks, refused
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve
from tests.integration.test_gateway_anthropic_cache import spend_row

MASTER = "master-key-for-the-secrets-test"
UPSTREAMS = ("openai", "anthropic")
ROUTES = ("/v1/chat/completions", "/v1/messages", "/v1/responses")
# (stream, how the upstream fails)
CASES = [(False, "refused"), (True, "refused"), (True, "mid-stream")]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, FakeOpenAI]]:
    with FakeOpenAI() as openai_fake, anth.FakeAnthropic() as anthropic_fake:
        yield {"openai": openai_fake, "anthropic": anthropic_fake}


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, FakeOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    models = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5"}
    keys = {name: f"os.environ/SECRETS_TEST_{name.upper()}_KEY" for name in models}
    config = gateway_config(
        *[deployment(n, fake, models[n], api_key=keys[n]) for n, fake in upstreams.items()],
        master_key=MASTER,
        database=SQLITE,
        # one try, no cooldown: each request meets exactly the failure scripted for it
        router={"num_retries": 0, "cooldown_time": 0},
    )
    env = {f"SECRETS_TEST_{name.upper()}_KEY": key for name, key in KEYS.items()}
    with serve(config, tmp_path_factory, env=env) as gateway:
        yield gateway


def body_for(route: str, model: str, stream: bool) -> bytes:
    if route == "/v1/responses":
        return json.dumps({"model": model, "input": "hi", "stream": stream}).encode()
    messages = [{"role": "user", "content": "hi"}]
    body = {"model": model, "messages": messages, "max_tokens": 16, "stream": stream}
    return json.dumps(body).encode()


def post(url: str, route: str, body: bytes) -> tuple[int, str, str]:
    """(status, every header line, the whole body) as the client received them."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
        conn.request("POST", route, body, headers)
        resp = conn.getresponse()
        return resp.status, str(resp.headers), resp.read().decode()
    finally:
        conn.close()


def request_id_in(headers: str) -> str:
    lines = (line.partition(": ") for line in headers.splitlines())
    return next(value for name, _, value in lines if name.lower() == "x-chatgate-request-id")


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("stream", "failure"), CASES)
def test_no_key_in_answer_log_or_spend_row(
    gateway: Gateway,
    upstreams: dict[str, FakeOpenAI],
    database: Path,
    upstream: str,
    route: str,
    stream: bool,
    failure: str,
) -> None:
    upstreams[upstream].script(
        refused(upstream) if failure == "refused" else broken_stream(upstream)
    )
    status, headers, body = post(gateway.url, route, body_for(route, upstream, stream))

    # the failure reached the client, told in the route's own format: an error status when
    # refused (streamed or not), the route's error event when the stream broke off
    if failure == "refused":
        assert status >= 500, body
    else:
        assert status == 200, body
        marker = {
            "/v1/chat/completions": '"error"',
            "/v1/messages": "event: error",
            "/v1/responses": "response.failed",
        }[route]
        assert marker in body, body
    assert "Incorrect API key provided: ***" in body, body  # scrubbed, not dropped
    assert leaks(headers + body) == [], headers + body

    request_id = request_id_in(headers)
    gateway.wait_for_access_line(request_id)
    assert leaks(gateway.log_text()) == []
    row = spend_row(database, request_id)
    assert row["error"], dict(row)  # the failure is recorded ...
    assert leaks(repr(tuple(row))) == []  # ... without the key


def test_no_key_in_a_refused_embeddings_answer(
    gateway: Gateway, upstreams: dict[str, FakeOpenAI], database: Path
) -> None:
    upstreams["openai"].script(refused("openai"))
    body = json.dumps({"model": "openai", "input": "hi"}).encode()
    status, headers, answer = post(gateway.url, "/v1/embeddings", body)
    assert status >= 500, answer
    assert "Incorrect API key provided: ***" in answer, answer
    assert leaks(headers + answer) == [], headers + answer
    request_id = request_id_in(headers)
    gateway.wait_for_access_line(request_id)
    assert leaks(gateway.log_text()) == []


def test_a_failure_the_gateway_logs_is_logged_scrubbed(
    gateway: Gateway, upstreams: dict[str, FakeOpenAI]
) -> None:
    """A 5xx whole answer writes a warning with the error's text: the text is there, the key
    is not."""
    upstreams["openai"].script(refused("openai"))
    status, headers, _ = post(gateway.url, ROUTES[0], body_for(ROUTES[0], "openai", False))
    assert status >= 500
    request_id = request_id_in(headers)
    gateway.wait_for_access_line(request_id)
    warning = next(x for x in gateway.log_text().splitlines() if f"request {request_id}" in x)
    assert "Incorrect API key provided: ***" in warning
    assert leaks(gateway.log_text()) == []


def test_the_spend_log_holds_no_key_anywhere(database: Path, gateway: Gateway) -> None:
    with sqlite3.connect(database) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            assert leaks(repr(rows)) == [], table
