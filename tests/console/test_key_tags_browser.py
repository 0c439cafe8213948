"""The console's Keys page sets and shows a key's tags, in a real headless Chromium: create a
key with tags, see them in its row, change them, clear them; a request made with the key
carries the tags the page set, and a malformed tag is refused with the admin API's message."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.console.browser import Shots, browser  # noqa: F401  (a fixture)
from tests.console.conftest import MASTER
from tests.console.test_admin_logs import chat, logged
from tests.fakes.gateway import Gateway


def spend_tags(gw: Gateway, key: str) -> list[str]:
    """The tags of a request made with ``key``, as its spend-log row holds them."""
    request_id = chat(gw, key)
    logged(gw, request_id)
    _, body = gw.admin("GET", f"/admin/logs?request_id={request_id}")
    tags: list[str] = body["data"][0]["tags"]
    return tags


def test_the_keys_page_sets_and_shows_a_keys_tags(
    gateway: Gateway,
    browser: Browser,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{gateway.url}/ui")
        page.fill("#signin-key", MASTER)
        page.click("#signin button")
        page.click("a[href='#/keys']")
        page.fill("#create-key input[name=name]", "tagged-app")
        page.fill("#create-key input[name=tags]", "team-search, exp-7")
        page.click("#create-key button")
        secret = page.locator("#new-secret").inner_text()
        row = page.locator("tr", has_text="tagged-app")
        expect(row.locator("td.tags")).to_have_text("team-search, exp-7")
        assert spend_tags(gateway, secret) == ["team-search", "exp-7"]

        row.locator("button.edit").click()
        edit = page.locator("tr:has(form) form")
        expect(edit.locator("input[name=tags]")).to_have_value("team-search, exp-7")
        edit.locator("input[name=tags]").fill("exp-8")
        edit.locator("button").click()
        row = page.locator("tr", has_text="tagged-app")
        expect(row.locator("td.tags")).to_have_text("exp-8")
        Shots(tmp_path_factory.mktemp("key-tag-shots")).take(
            page, "keys-tags", mask=[page.locator("#new-secret")]
        )
        assert spend_tags(gateway, secret) == ["exp-8"]

        row.locator("button.edit").click()
        edit = page.locator("tr:has(form) form")
        edit.locator("input[name=tags]").fill("")  # an empty field clears them
        edit.locator("button").click()
        row = page.locator("tr", has_text="tagged-app")
        expect(row.locator("td.tags")).to_have_text("")
        assert spend_tags(gateway, secret) == []

        page.fill("#create-key input[name=name]", "bad-tags")
        page.fill("#create-key input[name=tags]", "x" * 65)
        page.click("#create-key button")
        expect(page.locator("#error")).to_contain_text("tags")
        expect(page.locator("tr", has_text="bad-tags")).to_have_count(0)
    finally:
        context.close()
