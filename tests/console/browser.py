"""Headless Chromium for the console tests: Debian's system browser (scripts/system_deps.sh
installs it) driven by Playwright; nothing is downloaded (``playwright install`` is never
run). Screenshots go to a temporary folder (its path is printed) and, with
``CHATGATE_CONSOLE_SHOTS=docs/console``, to that folder too, for the docs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system_deps.sh (Debian's chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Shots:
    """Screenshots of a page, numbered in the order taken."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.copy_to = os.environ.get("CHATGATE_CONSOLE_SHOTS")
        print(f"console screenshots: {folder}")

    def take(self, page: Page, name: str, mask: Sequence[Locator] = ()) -> Path:
        """``mask``: parts painted over, e.g. a secret shown once."""
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, mask=list(mask))
        if self.copy_to:
            shutil.copy(path, Path(self.copy_to) / path.name)
        return path
