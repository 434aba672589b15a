"""The browser live view, in a real Chromium against the real router and beater."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from devstack.stack import Stack
from tests.browser_page import LiveView
from tests.http_client import ingest
from tests.real_stack import ServiceHandle, StartService


def send(beater: ServiceHandle, index: str, docs: list[dict]) -> None:
    resp = ingest(beater.url, index, docs)
    assert resp.status == 200, resp.body


def test_only_matching_hits_appear_newest_on_top(
    live_view: LiveView, beater: ServiceHandle, index: str
) -> None:
    view = live_view.open()
    sid = view.follow(index, "level:error AND service:api")
    expect(view.page.locator("#curl")).to_have_value(f"curl -N 'http://127.0.0.1:8082/api/v0.1/docs?s={sid}'")

    docs = [
        {
            "@timestamp": "2026-11-27T12:00:01Z",
            "level": "error",
            "service": "api",
            "message": "upstream timeout",
        },
        {
            "@timestamp": "2026-11-27T12:00:02Z",
            "level": "info",
            "service": "api",
            "message": "request served",
        },
        {"@timestamp": "2026-11-27T12:00:03Z", "level": "error", "service": "db", "message": "disk full"},
        {"@timestamp": "2026-11-27T12:00:04Z", "level": "error", "service": "api", "message": "bad gateway"},
    ]
    send(beater, index, docs)
    # A matching marker last: once it shows, everything before it was delivered.
    marker = {"level": "error", "service": "api", "message": "marker"}
    send(beater, index, [marker])
    expect(view.rows).to_have_count(3)
    shown = [json.loads(text) for text in view.row_docs()]
    assert shown == [marker, docs[3], docs[0]]  # newest on top, only the matches

    # Columns: time plus fields chosen from the first hit; the query's terms highlighted.
    heads = view.page.locator("#hits-head th").all_inner_texts()
    assert [h.lower() for h in heads[:3]] == ["time", "level", "service"]
    assert set(view.page.locator("#rows tr.hit").last.locator("mark").all_inner_texts()) >= {"error", "api"}
    expect(view.page.locator("#total")).to_have_text("3")

    # The whole document on click.
    view.rows.nth(1).click()
    detail = view.page.locator("#rows tr.detail pre")
    expect(detail).to_contain_text('"message": "bad gateway"')
    expect(detail).to_contain_text(f'"_index":"{index}"')
    shot = view.screenshot("live-view")
    assert shot.stat().st_size > 10_000


def test_pause_buffers_and_resume_flushes(live_view: LiveView, beater: ServiceHandle, index: str) -> None:
    view = live_view.open()
    view.follow(index, "kind:tick")
    send(beater, index, [{"kind": "tick", "n": 0}])
    expect(view.rows).to_have_count(1)

    view.page.click("#pause")
    expect(view.page.locator("#pause")).to_contain_text("Resume")
    send(beater, index, [{"kind": "tick", "n": n} for n in (1, 2, 3)])
    expect(view.page.locator("#waiting")).to_have_text("3")
    expect(view.page.locator("#waiting-box")).to_be_visible()
    assert view.rows.count() == 1
    view.screenshot("paused")

    view.page.click("#pause")
    expect(view.rows).to_have_count(4)
    expect(view.page.locator("#waiting-box")).to_be_hidden()
    assert [json.loads(t)["n"] for t in view.row_docs()] == [3, 2, 1, 0]

    view.page.click("#clear")
    expect(view.rows).to_have_count(0)


def test_reload_restores_the_view_from_the_url(
    live_view: LiveView, beater: ServiceHandle, index: str
) -> None:
    view = live_view.open()
    query = '{"match": {"color": "blue"}}'
    sid = view.follow(index, query)
    url = view.page.url
    assert f"i={index}" in url
    assert "q=" in url

    view.page.reload()
    view.expect_connected()
    assert view.wait_sid() == sid
    expect(view.page.locator("#index")).to_have_value(index)
    expect(view.page.locator("#query")).to_have_value(query)
    send(beater, index, [{"color": "red"}, {"color": "blue", "k": 1}])
    expect(view.rows).to_have_count(1)
    assert json.loads(view.row_docs()[0]) == {"color": "blue", "k": 1}

    # The same URL in a fresh tab shows the same view: it is shareable.
    other = LiveView(view.page.context.new_page(), int(re.search(r":(\d+)/", url).group(1)))
    other.page.goto(url)
    assert other.wait_sid() == sid


def test_errors_are_shown_readably(live_view: LiveView, index: str, beater: ServiceHandle) -> None:
    view = live_view.open()
    view.page.fill("#index", index)
    view.page.fill("#query", "level:(")
    view.page.press("#query", "Enter")
    error = view.page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Invalid query")
    expect(error).to_contain_text("com.estrom.error.invalid_query")
    view.screenshot("invalid-query")

    view.page.fill("#query", '{"match": ')
    view.page.press("#query", "Enter")
    expect(error).to_contain_text("not valid JSON")

    view.page.fill("#index", "Bad*Index")
    view.page.fill("#query", "x:y")
    view.page.press("#query", "Enter")
    expect(error).to_contain_text("Invalid index")


def test_reconnects_and_resubscribes_after_the_router_restarts(
    browser_context, start_beater: StartService, stack: Stack, index: str
) -> None:
    own = stack.start_router(f"router-{index}")
    try:
        beater = start_beater(router_url=own.service_url)
        view = LiveView(browser_context.new_page(), own.port).open()
        sid = view.follow(index, "kind:beat")
        send(beater, index, [{"kind": "beat", "n": 1}])
        expect(view.rows).to_have_count(1)

        own.stop()
        expect(view.page.locator("#conn")).not_to_have_attribute("data-state", "open")
        expect(view.page.locator("#sid")).to_have_attribute("data-live", "0")
        own.start()
        view.expect_connected(timeout=30_000)
        assert view.wait_sid() == sid  # subscribed again (after retrying until the beater was back)
        # The beater rejoins on its own; retry the ingest until it has.
        for _ in range(100):
            if ingest(beater.url, index, [{"kind": "beat", "n": 2}]).status == 200:
                break
            view.page.wait_for_timeout(200)
        expect(view.rows).to_have_count(2)
        assert json.loads(view.row_docs()[0])["n"] == 2
    finally:
        own.stop()
