"""The page logs in with a reader's token (WAMP ticket) in a real Chromium, against a readers rstack."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.browser_page import LiveView
from tests.http_client import ingest
from tests.readers.stack import LOGS, OPS, PAYROLL, WRONG, ReadersStack

pytestmark = pytest.mark.integration


def test_the_page_logs_in_follows_what_it_may_and_shows_the_refusal(
    browser_context,
    rstack: ReadersStack,
) -> None:
    view = LiveView(browser_context.new_page(), rstack.router.port).open()
    login = view.page.locator("#login")
    expect(login).to_have_text("log in with a token")
    # Anonymous reads public-* only: logs are refused.
    view.page.fill("#index", LOGS)
    view.page.fill("#query", "level:error")
    view.page.press("#query", "Enter")
    expect(view.page.locator("#error")).to_contain_text("not_authorized")

    view.page.once("dialog", lambda dialog: dialog.accept(OPS))
    login.click()
    view.expect_connected()
    expect(login).to_have_text("reader: ops · log out")
    assert view.page.evaluate("localStorage.getItem('estrom.token')") == OPS

    marker = uuid.uuid4().hex
    view.follow(LOGS, f"marker:{marker}")
    assert ingest(rstack.beater.url, LOGS, [{"marker": marker, "level": "error"}]).status == 200
    expect(view.rows).to_have_count(1)

    # A target the reader may not read: the refusal is shown, nothing is followed.
    view.page.fill("#index", PAYROLL)
    view.page.fill("#query", "salary:*")
    view.page.press("#query", "Enter")
    expect(view.page.locator("#error")).to_contain_text("Not allowed for this reader")
    view.screenshot("reader-refused")

    # The token stays across visits; logging out forgets it.
    view.page.reload()
    view.expect_connected()
    expect(login).to_have_text("reader: ops · log out")
    login.click()
    view.expect_connected()
    expect(login).to_have_text("log in with a token")
    assert view.page.evaluate("localStorage.getItem('estrom.token')") is None


def test_a_refused_token_is_forgotten(browser_context, rstack: ReadersStack) -> None:
    page = browser_context.new_page()
    page.goto(f"http://127.0.0.1:{rstack.router.port}/")
    page.evaluate(f"localStorage.setItem('estrom.token', '{WRONG}')")
    page.reload()
    expect(page.locator("#login")).to_have_text("token refused · log in again", timeout=20_000)
    assert page.evaluate("localStorage.getItem('estrom.token')") is None
