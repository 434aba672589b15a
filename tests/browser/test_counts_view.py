"""The live view's counts in a real Chromium: the histogram, and the top values of a clicked column."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser_page import LiveView
from tests.http_client import ingest
from tests.real_stack import ServiceHandle


def send(beater: ServiceHandle, index: str, docs: list[dict]) -> None:
    resp = ingest(beater.url, index, docs)
    assert resp.status == 200, resp.body


def test_histogram_grows_and_top_values_count_a_clicked_column(
    live_view: LiveView, beater: ServiceHandle, tailor: ServiceHandle, index: str
) -> None:
    view = live_view.open()
    page = view.page
    page.click("details.settings summary")
    page.fill("#tailor-url", tailor.url)
    page.dispatch_event("#tailor-url", "change")
    view.follow(index, "level:error")
    expect(page.locator("#counts")).to_be_visible()
    # 300 one-second windows of the past period (empty), then one per second.
    expect(page.locator("#histogram .hbar")).to_have_count(300)

    send(beater, index, [{"level": "error", "service": "api", "n": i} for i in range(3)])
    send(beater, index, [{"level": "error", "service": "db"}, {"level": "info", "service": "web"}])
    expect(view.rows).to_have_count(4)
    # Bars move as hits arrive: the windows that held them sum to the matches.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#histogram .hbar')]"
        ".reduce((s, b) => s + Number(b.dataset.total), 0) === 4"
    )

    # Pausing the table does not pause the counts.
    page.click("#pause")
    send(beater, index, [{"level": "error", "service": "api", "n": 9}])
    page.wait_for_function(
        "() => [...document.querySelectorAll('#histogram .hbar')]"
        ".reduce((s, b) => s + Number(b.dataset.total), 0) === 5"
    )
    expect(view.rows).to_have_count(4)
    page.click("#pause")
    view.screenshot("counts-histogram")

    # Count by a column: its header; the bar sums the last minute's windows
    # (the past minute from stored documents: none here, the beater stores nothing).
    page.locator("#hits-head th.col", has_text="service").click()
    expect(page.locator("#top-field")).to_have_text("service")
    page.wait_for_function("() => Number(document.querySelector('#topbar').dataset.frames) > 0")
    send(beater, index, [{"level": "error", "service": "api", "n": i} for i in range(3)])
    send(beater, index, [{"level": "error", "service": "db"}, {"level": "info", "service": "web"}])
    expect(page.locator("#topbar .seg[data-value='api']")).to_have_attribute("data-count", "3")
    expect(page.locator("#topbar .seg[data-value='db']")).to_have_attribute("data-count", "1")
    assert page.locator("#topbar .seg[data-value='web']").count() == 0  # not a match
    view.screenshot("counts-top-values")

    # Clicking a value narrows the query to it. The click is dispatched on the
    # element: the bar redraws every second, which Playwright's pointer click
    # takes for an element that never stops moving.
    before = view.wait_sid()
    page.dispatch_event("#topbar .seg[data-value='api']", "click")
    expect(page.locator("#query")).to_have_value('(level:error) AND service:"api"')
    expect(page.locator("#sid")).not_to_have_text(before)
    view.wait_sid()
    send(
        beater,
        index,
        [{"level": "error", "service": "db", "n": 41}, {"level": "error", "service": "api", "n": 42}],
    )
    expect(view.rows).to_have_count(1)
    assert '"n": 42' in view.row_docs()[0] or '"n":42' in view.row_docs()[0].replace(" ", "")
