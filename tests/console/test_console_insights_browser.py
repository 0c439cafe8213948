"""The Overview's tag stacks, fallbacks and savings, the Logs' routing filters, and the sign-in
limit's message, in a real headless Chromium against a real gateway and a fake upstream."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import Shots, browser  # noqa: F401  (a fixture)
from tests.console.conftest import MASTER, new_key
from tests.console.test_admin_logs import logged
from tests.console.test_admin_overview import tagged_chat
from tests.console.test_console_browser import page  # noqa: F401  (a fixture)
from tests.fakes.base import Reply
from tests.fakes.gateway import Gateway
from tests.fakes.openai_server import FakeOpenAI, completion_json


def sign_in(page: Page, gw: Gateway) -> None:  # noqa: F811
    page.goto(f"{gw.url}/ui")
    page.fill("#signin-key", MASTER)
    page.click("#signin button")
    expect(page.locator("#nav")).to_be_visible()


def test_tags_fallbacks_and_savings_on_the_overview_and_in_logs(
    gateway: Gateway,
    upstream: FakeOpenAI,
    page: Page,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    shots = Shots(tmp_path_factory.mktemp("console-insights"))
    secret, _ = new_key(gateway, name="insights")
    # a long prompt mostly read from the provider's prompt cache: a saving to record
    cached = completion_json("cached", prompt_tokens=20_000, cached_tokens=18_000)
    upstream.script(Reply(json=cached))  # the next request's answer
    sent = [
        tagged_chat(gateway, secret, "support,eu"),
        tagged_chat(gateway, secret, "support"),
        tagged_chat(gateway, secret, None),
    ]
    rescued = tagged_chat(gateway, secret, "eu", "flaky")  # its deployment is down: "fast" answers
    logged(gateway, *sent, rescued)

    sign_in(page, gateway)
    page.select_option("#overview-controls select[name=bucket]", "hour")
    page.select_option("#overview-controls select[name=by]", "tag")
    expect(page.locator("#spend-title")).to_have_text("Spend per hour, by tag")
    for tag in ("support", "eu", "(none)"):
        expect(page.locator(f"#spend-chart rect[data-series='{tag}']")).not_to_have_count(0)
    expect(page.locator("#tag-note")).to_be_visible()
    expect(page.locator("#tag-note")).to_contain_text("counts in each of their stacks")
    expect(page.locator("#total-fallbacks")).not_to_have_text("0")
    expect(page.locator("#total-retried")).not_to_have_text("0")
    expect(page.locator("#saved-chart rect[data-series='prompt caching']")).to_have_count(1)
    expect(page.locator("#total-saved")).not_to_have_text("$0")
    expect(page.locator("#overview .legend", has_text="prompt caching $")).to_be_visible()
    shots.take(page, "overview-tags-savings")
    page.select_option("#overview-controls select[name=by]", "model")
    expect(page.locator("#tag-note")).to_be_hidden()

    page.click("a[href='#/logs']")
    page.select_option("#log-filters select[name=fallback]", "true")
    page.click("#log-filters button")
    row = page.locator(f"tr[data-request='{rescued}']")
    expect(row).to_be_visible()
    expect(row.locator("td.route")).to_contain_text("fallback")
    expect(page.locator("tr[data-request]")).to_have_count(1)
    row.click()
    detail = page.locator("#log-detail")
    expect(detail).to_contain_text("yes: a fallback group answered")
    shots.take(page, "logs-fallback")
    page.select_option("#log-filters select[name=fallback]", "")
    page.select_option("#log-filters select[name=retried]", "false")
    page.fill("#log-filters input[name=request_id]", sent[0])
    page.click("#log-filters button")
    page.locator(f"tr[data-request='{sent[0]}']").click()
    expect(detail).to_contain_text("prompt $")  # the cache reads' saving, as recorded


def test_the_sign_in_page_says_when_to_try_again(gateway: Gateway, page: Page) -> None:  # noqa: F811
    """Last in this module: it locks the browser's address (127.0.0.1) out of signing in."""
    page.goto(f"{gateway.url}/ui")
    for n in range(5):
        page.fill("#signin-key", f"wrong-{n}")
        page.click("#signin button")
        expect(page.locator("#error")).to_contain_text("invalid key")
    page.fill("#signin-key", MASTER)
    page.click("#signin button")
    expect(page.locator("#error")).to_contain_text("too many failed sign-ins; try again in")
    expect(page.locator("#nav")).to_be_hidden()
