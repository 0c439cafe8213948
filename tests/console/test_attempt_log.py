"""Every attempt of a request in the spend log: a call whose first group fails (the fake
upstream's 500s) and a fallback answers shows each try, with its deployment, error, wait and
latency, in the admin API and in the console's detail; a credential the upstream echoed in its
error is never stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, expect

from tests.console.browser import Shots, browser  # noqa: F401  (a fixture)
from tests.console.conftest import MASTER, master_client
from tests.console.test_admin_logs import logged
from tests.fakes.gateway import Gateway, start_gateway
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json

UPSTREAM_KEY = "sk-upstream-echoed-in-errors-9"
# a fake in a real key's shape (built here so that no file holds a key-shaped string)
OTHER_KEY = "-".join(("sk", "ant", "api03", "someone", "elses", "key", "0123456789"))


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAI, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    params = {"api_base": upstream.base_url, "api_key": UPSTREAM_KEY}
    config = {
        "model_list": [
            {"model_name": "fast", "params": {"model": "openai/gpt-4o-mini", **params}},
            {"model_name": "wobbly", "params": {"model": "openai/gpt-4o", **params}},
        ],
        "router_settings": {
            "fallbacks": [{"wobbly": ["fast"]}],
            "num_retries": 1,
            "retry_base_delay": 0.05,
        },
        "general_settings": {"master_key": MASTER, "database_url": database},
    }
    with start_gateway(config, tmp_path_factory.mktemp("attempts")) as gw:
        yield gw


def echoing_500() -> Reply:
    message = f"upstream broke; your key {UPSTREAM_KEY} and {OTHER_KEY} did not help"
    return Reply(status=500, json=error_json(message, "server_error"))


def failed_over(gw: Gateway, upstream: FakeOpenAI) -> str:
    upstream.script(echoing_500(), echoing_500())  # the try and the retry of "wobbly"
    resp = requests.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "wobbly", "messages": [{"role": "user", "content": "try again"}]},
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    request_id = str(resp.headers["x-chatgate-request-id"])
    logged(gw, request_id)
    return request_id


def test_a_failover_shows_every_attempt(gateway: Gateway, upstream: FakeOpenAI) -> None:
    request_id = failed_over(gateway, upstream)
    with master_client(gateway) as http:
        (row,) = http.get(f"/admin/logs/{request_id}").json()["records"]
        page = http.get("/admin/logs", params={"request_id": request_id}).text
    first, retry, answered = row["attempt_log"]
    # the retry goes to "wobbly" again, or to "fast" once "wobbly" cools down (an earlier test's
    # failures count towards its cooldown): either way the second 500 is the second attempt
    assert first["deployment"] == "wobbly#0"
    assert retry["deployment"] in ("wobbly#0", "fast#0")
    assert answered["deployment"] == "fast#0"
    for failure in (first, retry):
        assert failure["error"] == "InternalServerError"
        assert failure["status_code"] == 500
        assert "upstream broke" in failure["message"]
        assert failure["latency_ms"] > 0
    assert first["wait_s"] > 0  # the backoff before the retry of the only deployment
    assert answered["error"] is None
    assert answered["latency_ms"] > 0
    assert row["attempts"] == 3
    assert row["fallback"] is True
    stored = str(row["attempt_log"]) + page
    assert UPSTREAM_KEY not in stored
    assert OTHER_KEY not in stored
    assert "someone-elses" not in stored


def test_a_first_try_answer_stores_no_attempts(gateway: Gateway) -> None:
    resp = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": "once"}]},
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=10,
    )
    request_id = resp.headers["x-chatgate-request-id"]
    logged(gateway, request_id)
    with master_client(gateway) as http:
        (row,) = http.get(f"/admin/logs/{request_id}").json()["records"]
    assert row["attempt_log"] == []


def test_a_failed_call_stores_its_attempt(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script(Reply(status=400, json=error_json(f"bad {OTHER_KEY}", "invalid_request_error")))
    resp = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": "no"}]},
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=10,
    )
    assert resp.status_code == 400
    request_id = resp.headers["x-chatgate-request-id"]
    logged(gateway, request_id)
    with master_client(gateway) as http:
        (row,) = http.get(f"/admin/logs/{request_id}").json()["records"]
    (only,) = row["attempt_log"]
    assert (only["deployment"], only["status_code"], only["wait_s"]) == ("fast#0", 400, 0.0)
    assert OTHER_KEY not in str(only)


def test_the_console_detail_lists_the_attempts(
    gateway: Gateway,
    upstream: FakeOpenAI,
    browser: Browser,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    request_id = failed_over(gateway, upstream)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{gateway.url}/ui")
        page.fill("#signin-key", MASTER)
        page.click("#signin button")
        page.click("a[href='#/logs']")
        page.fill("#log-filters input[name=request_id]", request_id)
        page.click("#log-filters button")
        page.locator(f"tr[data-request='{request_id}']").click()
        rows = page.locator("#log-detail .attempts tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_contain_text("wobbly#0")
        expect(rows.nth(0)).to_contain_text("InternalServerError (500)")
        expect(rows.nth(2)).to_contain_text("fast#0")
        expect(rows.nth(2)).to_contain_text("ok")
        expect(page.locator("#log-detail")).not_to_contain_text(UPSTREAM_KEY)
        Shots(tmp_path_factory.mktemp("attempt-shots")).take(page, "logs-attempts")
    finally:
        context.close()
