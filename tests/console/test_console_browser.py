"""Every console page in a real headless Chromium, against a real gateway and a fake
upstream: sign in, create a key, send a request with it, find it in Logs and open it, see the
chart change, revoke the key, sign out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.console.browser import Shots, browser  # noqa: F401  (a fixture)
from tests.console.conftest import MASTER
from tests.fakes.gateway import Gateway


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield tab
    context.close()
    csp = [e for e in errors if "Content Security Policy" in e]
    assert not csp, csp  # nothing the page does is blocked by its own CSP


def chat(gw: Gateway, key: str, text: str) -> requests.Response:
    return requests.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def answer_key_id(gw: Gateway, request_id: str) -> str:
    resp = requests.get(
        f"{gw.url}/admin/logs/{request_id}",
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=10,
    )
    return str(resp.json()["records"][0]["key_id"])


def test_the_console_end_to_end(
    gateway: Gateway, page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shots = Shots(tmp_path_factory.mktemp("console-shots"))
    page.goto(f"{gateway.url}/ui")
    page.fill("#signin-key", MASTER)
    page.click("#signin button")
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator("#who")).to_have_text("signed in: master key")
    cookie = page.context.cookies()[0]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert MASTER not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # the script cannot read the session
    expect(page.locator("#total-requests")).to_be_visible()  # Overview is the first page
    requests_before = page.locator("#total-requests").inner_text()
    bars_before = page.locator("#spend-chart rect[data-series=fast]").count()

    # Keys: create one; its secret is shown once
    page.click("a[href='#/keys']")
    page.fill("#create-key input[name=name]", "browser-app")
    page.fill("#create-key input[name=models]", "fast")
    page.fill("#create-key input[name=budget]", "5")
    page.click("#create-key button")
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("sk-cg-")
    row = page.locator("tr", has_text="browser-app")
    expect(row).to_contain_text("of $5 monthly")
    row.locator("button.edit").click()  # edit: limits and expiry
    edit = page.locator("tr:has(form) form")
    edit.locator("input[name=rpm]").fill("60")
    edit.locator("input[name=expires]").fill("30d")
    edit.locator("button").click()
    row = page.locator("tr", has_text="browser-app")
    expect(row.locator("td.num").first).to_have_text("60")
    expect(row).not_to_contain_text("never")  # it expires now
    shots.take(page, "keys", mask=[page.locator("#new-secret")])

    # a request with the new key, then Logs finds it and opens it
    answer = chat(gateway, secret, "hello console")
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-chatgate-request-id"]
    page.click("a[href='#/logs']")
    log_row = page.locator(f"tr[data-request='{request_id}']")
    expect(log_row).to_be_visible()
    expect(log_row).to_contain_text("fast")
    page.fill("#log-filters input[name=model]", "smart")
    page.click("#log-filters button")
    expect(page.locator("#page")).to_contain_text("No requests match.")
    page.fill("#log-filters input[name=model]", "")
    page.fill("#log-filters input[name=request_id]", request_id)
    page.click("#log-filters button")
    page.locator(f"tr[data-request='{request_id}']").click()
    detail = page.locator("#log-detail")
    expect(detail).to_contain_text(f"Request {request_id}")
    expect(detail).to_contain_text("tokens: input")
    expect(detail).to_contain_text("Message content is not logged")
    shots.take(page, "logs")

    # Overview: the request is in the totals and in the spend chart's "fast" bar
    page.click("a[href='#/overview']")
    expect(page.locator("#total-requests")).not_to_have_text(requests_before)
    assert page.locator("#spend-chart rect[data-series=fast]").count() >= max(1, bars_before)
    page.select_option("#overview-controls select[name=by]", "key")
    expect(page.locator("#spend-chart rect[data-series^=key_]")).not_to_have_count(0)
    page.select_option("#overview-controls select[name=by]", "model")
    expect(page.locator("#spend-title")).to_have_text("Spend per day, by model")
    shots.take(page, "overview")

    # Budgets: the global one and the new key's, with what the request spent
    page.click("a[href='#/budgets']")
    expect(page.locator("tr[data-budget='global:*:monthly']")).to_contain_text("of $100")
    key_id = answer_key_id(gateway, request_id)
    expect(page.locator(f"tr[data-budget='key:{key_id}:monthly']")).to_contain_text("of $5")
    shots.take(page, "budgets")

    # Models: both deployments, healthy, the one that answered with a latency
    page.click("a[href='#/models']")
    fast = page.locator("tr[data-deployment]", has_text="openai/gpt-4o-mini")
    expect(fast).to_contain_text("healthy")
    expect(fast).to_contain_text(" ms")
    expect(page.locator("tr[data-deployment]")).to_have_count(3)  # fast, smart, flaky
    shots.take(page, "models")

    # Playground: a streamed answer with its latency and cost
    page.click("a[href='#/playground']")
    page.select_option("#playground select[name=model]", "fast")
    page.fill("#playground textarea", "hi playground")
    page.click("#playground button")
    expect(page.locator("#transcript .answer")).to_have_text("echo: hi playground")
    expect(page.locator("#transcript .stats")).to_contain_text("first token")
    expect(page.locator("#transcript .stats")).to_contain_text("$")
    shots.take(page, "playground")

    # Keys: revoke it; the gateway refuses it from then on
    page.click("a[href='#/keys']")
    row = page.locator("tr", has_text="browser-app")
    expect(row).to_contain_text("of $5 monthly")
    assert "$0.000000 of" not in row.inner_text()  # the request's cost is counted
    row.locator("button.revoke").click()
    row.locator("button.revoke").click()  # "Confirm revoke"
    expect(page.locator("tr", has_text="browser-app")).to_have_count(0)
    assert chat(gateway, secret, "after revoke").status_code == 401

    page.click("#signout")
    expect(page.locator("#signin")).to_be_visible()
    page.reload()
    expect(page.locator("#signin")).to_be_visible()  # the session is gone, not just hidden
    shots.take(page, "signin")
