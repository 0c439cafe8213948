"""Virtual keys, budgets, per-key limits, the spend log and the cache through a real
`chatgate serve` process, with the official openai and anthropic SDKs as clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.clock import poll_until
from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json
from tests.gateway_harness import SQLITE, UPSTREAM_KEY, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-keys-test-42"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("fast", upstream),
        deployment("smart", upstream, "openai/gpt-4o"),
        master_key=MASTER,
        database=SQLITE,
        router={"cooldown_time": 0},
        key_cache_ttl_s=0,
        budgets=[{"scope": "team", "subject": "capped", "limit": "0.000002"}],
        cache={"backend": "memory"},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def new_key(gw: Gateway, **fields: Any) -> tuple[str, dict[str, Any]]:
    record = gw.create_key(**fields)
    return record.pop("key"), record


_OPEN: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every SDK client a test makes is closed after it: no sockets left to the GC."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(gw: Gateway, key: str, **options: Any) -> openai.OpenAI:
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, **{"max_retries": 0, **options})
    _OPEN.append(sdk)
    return sdk


def test_a_virtual_key_works_with_both_sdks_and_is_never_shown_again(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    secret, record = new_key(gateway, name="bot", models=["fast"], team="search", user="alice")
    assert secret.startswith("sk-cg-")
    answer = client(gateway, secret).chat.completions.create(model="fast", messages=HI)
    assert answer.choices[0].message.content == "echo: hi"
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=secret, max_retries=0)
    _OPEN.append(claude)
    message = claude.messages.create(model="fast", max_tokens=16, messages=HI)  # x-api-key
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]
    status, listing = gateway.admin("GET", "/admin/keys")
    assert status == 200
    assert record["key_id"] in {k["key_id"] for k in listing["data"]}
    assert secret not in json.dumps(listing)
    assert secret not in gateway.log_text()
    assert MASTER not in gateway.log_text()
    assert UPSTREAM_KEY not in gateway.log_text()


def test_model_allowlist_expiry_and_revocation(gateway: Gateway) -> None:
    secret, record = new_key(gateway, models=["fast"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client(gateway, secret).chat.completions.create(model="smart", messages=HI)
    assert denied.value.code == "model_not_allowed"
    assert gateway.admin("DELETE", f"/admin/keys/{record['key_id']}")[0] == 200
    with pytest.raises(openai.AuthenticationError) as revoked:
        client(gateway, secret).chat.completions.create(model="fast", messages=HI)
    assert revoked.value.code == "revoked_api_key"
    short, _ = new_key(gateway, expires=1)

    def expired() -> bool:  # the gateway's clock, in its own process: poll, sending no chat
        try:
            client(gateway, short).models.list()
        except openai.AuthenticationError:
            return True
        return False

    poll_until(expired, timeout_s=5.0, what="the key expired", every_s=0.1)
    with pytest.raises(openai.AuthenticationError) as expired:
        client(gateway, short).chat.completions.create(model="fast", messages=HI)
    assert expired.value.code == "expired_api_key"
    with pytest.raises(openai.AuthenticationError):
        client(gateway, "sk-cg-made-up").chat.completions.create(model="fast", messages=HI)


def test_a_virtual_key_cannot_use_the_admin_api(gateway: Gateway) -> None:
    secret, _ = new_key(gateway)
    status, body = gateway.admin("GET", "/admin/keys", key=secret)
    assert status == 403
    assert body["error"]["code"] == "admin_only"
    status, body = gateway.admin("POST", "/admin/keys", {"colour": "red"})
    assert status == 400
    assert "colour" in body["error"]["message"]


def test_key_rpm_limit_is_a_429_with_retry_after(gateway: Gateway, upstream: FakeOpenAI) -> None:
    secret, _ = new_key(gateway, rpm=2)
    sdk = client(gateway, secret)
    sdk.chat.completions.create(model="fast", messages=HI)
    sdk.chat.completions.create(model="fast", messages=HI)
    before = len(upstream.requests)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="fast", messages=HI)
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert len(upstream.requests) == before  # refused before any upstream call


def test_key_budget_is_a_402_the_sdk_does_not_retry(gateway: Gateway, upstream: FakeOpenAI) -> None:
    # gpt-4o-mini: $0.15 / $0.60 per million tokens; max_tokens=10 bounds each call's output
    secret, record = new_key(gateway, budget="0.00002")
    sdk = client(gateway, secret, max_retries=2)  # the SDK's default retries on
    spent = 0
    with pytest.raises(openai.APIStatusError) as refused:
        for _ in range(50):
            sdk.chat.completions.create(model="fast", messages=HI, max_tokens=10)
            spent += 1
    assert refused.value.status_code == 402
    assert refused.value.code == "budget_exceeded"
    assert "left" in refused.value.message
    assert 1 <= spent < 50
    requests_before = len(upstream.requests)
    with pytest.raises(openai.APIStatusError):
        sdk.chat.completions.create(model="fast", messages=HI, max_tokens=10)
    assert len(upstream.requests) == requests_before  # refused up front, and not retried
    rows = spend_rows(gateway, "key", record["key_id"], requests=spent + 2)
    assert Decimal(rows["cost"]) <= Decimal("0.00002")
    assert rows["requests"] == spent + 2  # the two refused calls are on record, costing 0


def test_a_global_team_budget_applies_to_keys_of_that_team(gateway: Gateway) -> None:
    secret, _ = new_key(gateway, team="capped")
    with pytest.raises(openai.APIStatusError) as refused:
        for _ in range(5):
            client(gateway, secret).chat.completions.create(model="fast", messages=HI, max_tokens=5)
    assert refused.value.status_code == 402


def spend_rows(
    gw: Gateway, by: str, group: str, requests: int = 1, timeout_s: float = 5.0
) -> dict[str, Any]:
    """The spend report row for ``group`` once the spend log has ``requests`` of its calls
    (records reach the log off the request path, a moment after the answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = gw.admin("GET", f"/admin/spend?by={by}&since=1d")
        assert status == 200, body
        row = {row["group"]: row for row in body["data"]}.get(group)
        if (row is not None and row["requests"] >= requests) or time.monotonic() > deadline:
            assert row is not None, body
            return row
        time.sleep(0.1)


def test_spend_log_and_headers_carry_the_cost(gateway: Gateway, upstream: FakeOpenAI) -> None:
    secret, record = new_key(gateway, team="search")
    upstream.script(
        Reply(json=completion_json("priced", prompt_tokens=1000, completion_tokens=100))
    )
    raw = client(gateway, secret).chat.completions.with_raw_response.create(
        model="fast", messages=HI
    )
    expected = Decimal("0.00000015") * 1000 + Decimal("0.0000006") * 100
    assert Decimal(raw.headers["x-chatgate-cost"]) == expected
    assert raw.headers["x-chatgate-model"] == "openai/gpt-4o-mini"
    row = spend_rows(gateway, "key", record["key_id"])
    assert Decimal(row["cost"]) == expected
    assert row["prompt_tokens"] == 1000
    assert row["completion_tokens"] == 100


def test_identical_repeatable_requests_are_served_from_the_cache(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    sdk = client(gateway, MASTER)
    ask = [{"role": "user", "content": "cache me please"}]
    first = sdk.chat.completions.with_raw_response.create(model="fast", messages=ask, temperature=0)
    before = len(upstream.requests)
    second = sdk.chat.completions.with_raw_response.create(
        model="fast", messages=ask, temperature=0
    )
    assert first.headers["x-chatgate-cache"] == "miss"
    assert second.headers["x-chatgate-cache"] == "hit"
    assert second.parse().choices[0].message.content == "echo: cache me please"
    assert len(upstream.requests) == before
    assert Decimal(second.headers["x-chatgate-cost"]) == 0
    fresh = sdk.chat.completions.with_raw_response.create(
        model="fast", messages=ask, temperature=0, extra_headers={"cache-control": "no-cache"}
    )
    assert fresh.headers["x-chatgate-cache"] == "miss"
    assert len(upstream.requests) == before + 1


def test_cli_keys_create_on_the_same_database(gateway: Gateway, tmp_path: Path) -> None:
    import subprocess
    import sys

    config = gateway.config_path
    done = subprocess.run(
        [sys.executable, "-m", "chatgate.cli", "keys", "create", "--config", str(config),
         "--models", "fast", "--budget", "1", "--rpm", "60", "--team", "cli"],
        capture_output=True, text=True, check=True, cwd=config.parent,
    )  # fmt: skip
    secret = done.stdout.split("key: ", 1)[1].split()[0]
    answer = client(gateway, secret).chat.completions.create(model="fast", messages=HI)
    assert answer.choices[0].message.content == "echo: hi"


def test_a_disconnected_stream_is_charged_for_what_it_produced(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    from tests.fakes.openai_server import text_stream

    secret, record = new_key(gateway, budget="1")
    words = [f"word{i} " for i in range(40)]
    upstream.script(Reply(chunks=text_stream(words), chunk_delay_s=0.05))
    stream = client(gateway, secret).chat.completions.create(model="fast", messages=HI, stream=True)
    for n, _ in enumerate(stream):
        if n == 5:
            break
    stream.close()
    assert upstream.wait_for_disconnect()
    row = spend_rows(gateway, "key", record["key_id"])
    assert row["completion_tokens"] > 0  # counted here: the upstream never sent its usage
    assert Decimal(row["cost"]) > 0
    assert row["errors"] == 1  # recorded as a client disconnect


def test_the_console_page_is_served_with_a_strict_csp_and_no_secret(gateway: Gateway) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{gateway.url}/ui", timeout=5) as resp:
        page = resp.read().decode()
        assert resp.headers["content-type"].startswith("text/html")
        csp = resp.headers["content-security-policy"]
        assert "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp  # tests/console/ goes through the pages themselves
    assert MASTER not in page


def test_readiness_checks_the_database_and_a_redis_cache(
    upstream: FakeOpenAI, redis_server: Any, tmp_path: Path
) -> None:
    config = gateway_config(
        deployment("fast", upstream), cache={"backend": "redis", "url": redis_server.url}
    )
    with serve(config, tmp_path) as gw:
        status, body = request_json(f"{gw.url}/health/readiness", method="GET")
        assert status == 200, body
        assert body["checks"]["database"] == {"ok": True}
        assert body["checks"]["cache"] == {"ok": True}
        sdk = client(gw, "anything")  # no master key: an open gateway
        ask = [{"role": "user", "content": "shared cache"}]
        first = sdk.chat.completions.with_raw_response.create(model="fast", messages=ask, seed=1)
        second = sdk.chat.completions.with_raw_response.create(model="fast", messages=ask, seed=1)
        assert (first.headers["x-chatgate-cache"], second.headers["x-chatgate-cache"]) == (
            "miss",
            "hit",
        )
    assert (tmp_path / "chatgate.db").exists()  # the embedded default database
