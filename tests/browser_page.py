"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright: one per test session.

Loaded as a plugin by tests/conftest.py, so that the browser, deploy and
readers tiers share one ``sync_playwright`` (a second one in the same
process fails: "Sync API inside the asyncio loop").

``scripts/bootstrap`` installs the browser from Debian's packages; Playwright's
own browser downloads are never used. Each test gets a fresh profile, so
nothing (localStorage, cache) leaks between tests.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.real_stack import ARTIFACTS

CHROMIUM = os.environ.get("ESTROM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ARTIFACTS / "browser"
# Hits cross ingest, engine, router and a browser: allow them more than expect()'s 5 s.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap installs Debian's chromium package")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser_context(playwright_session) -> Iterator[Browser]:
    with tempfile.TemporaryDirectory(prefix="estrom-chromium-") as profile:
        context = playwright_session.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 760},
        )
        try:
            yield context
        finally:
            context.close()


class LiveView:
    """The page at the router's root, with the few moves a person makes on it."""

    def __init__(self, page: Page, router_port: int) -> None:
        self.page = page
        self.base = f"http://127.0.0.1:{router_port}/"
        page.set_default_timeout(20_000)

    def open(self, fragment: str = "") -> LiveView:
        self.page.goto(self.base + fragment)
        self.expect_connected()
        return self

    def expect_connected(self, timeout: float = 20_000) -> None:
        expect(self.page.locator("#conn")).to_have_attribute("data-state", "open", timeout=timeout)

    def follow(self, index: str, query: str) -> str:
        self.page.fill("#index", index)
        self.page.fill("#query", query)
        self.page.press("#query", "Enter")
        return self.wait_sid()

    def wait_sid(self) -> str:
        """The sid, once the page is subscribed to its topic (hits published from now on arrive)."""
        sid = self.page.locator("#sid")
        expect(sid).to_have_text(re.compile(r"^[0-9a-f]{16}$"))
        expect(sid).to_have_attribute("data-live", "1")
        return sid.inner_text()

    @property
    def rows(self):
        return self.page.locator("#rows tr.hit")

    def row_docs(self) -> list[str]:
        return self.page.locator("#rows tr.hit td.doc").all_inner_texts()

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path
