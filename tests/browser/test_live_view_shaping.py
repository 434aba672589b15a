"""The live view's shaping in a real Chromium: columns as fields=, a delay, a max rate.

A delay is the page's own, on its WAMP stream (hits held, shown in
@timestamp order, older ones marked late); a max rate makes the page read the
tailor's SSE tail (max_rate=, delay=, fields=) and show "k of n/s" from its
``event: sampled``. What the page asks the tailor is checked on the request
itself; what comes back depends on the tailor's side of the contract.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import UTC, datetime

from playwright.sync_api import Page, Request, expect

from tests.browser_page import LiveView
from tests.http_client import ingest
from tests.real_stack import ServiceHandle

DOCS_PATH = "/api/v0.1/docs?"


def send(beater: ServiceHandle, index: str, docs: list[dict]) -> None:
    resp = ingest(beater.url, index, docs)
    assert resp.status == 200, resp.body


def _at(second: int) -> str:
    return f"2026-11-27T12:00:{second:02d}Z"


def settings(page: Page, *, tailor: ServiceHandle | None = None, columns: str | None = None) -> None:
    """Fill the Settings panel as a person does (a change event per field), then close it."""
    page.click("details.settings summary")
    if tailor is not None:
        page.fill("#tailor-url", tailor.url)
        page.dispatch_event("#tailor-url", "change")
    if columns is not None:
        page.fill("#fields", columns)
        page.dispatch_event("#fields", "change")
    page.click("details.settings summary")


def asked(request: Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))


def through_the_tailor(
    live_view: LiveView, tailor: ServiceHandle, *, max_rate: str, delay: str = "0", columns: str | None = None
) -> LiveView:
    """The page pointed at the session's tailor, with a max rate: it reads the tailor's SSE tail."""
    view = live_view.open()
    settings(view.page, tailor=tailor, columns=columns)
    view.page.select_option("#delay", delay)
    view.page.select_option("#max-rate", max_rate)
    return view


def follow_tail(view: LiveView, index: str, query: str) -> tuple[str, dict[str, str]]:
    """Follow a query: its sid, and the query string of the tail the page asked the tailor for."""
    with view.page.expect_request(lambda request: DOCS_PATH in request.url) as request:
        sid = view.follow(index, query)
    return sid, asked(request.value)


def test_typed_columns_are_what_the_curl_line_asks_for(
    live_view: LiveView, beater: ServiceHandle, index: str
) -> None:
    view = live_view.open()
    settings(view.page, columns="level, service")
    view.page.select_option("#delay", "2")
    sid = view.follow(index, "kind:cols")
    # Hits still come over WAMP (no max rate); the curl line asks the tailor for what is shown.
    expect(view.page.locator("#curl")).to_have_value(
        f"curl -N 'http://127.0.0.1:8082/api/v0.1/docs?s={sid}&fields=@timestamp,level,service&delay=2s'"
    )
    assert view.page.evaluate("() => window.estrom.state.tail") is None
    # The view is in the URL: shared, it comes back with its columns and delay.
    assert {"f": "level, service", "d": "2"}.items() <= dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(view.page.url).fragment)
    ).items()


def test_the_tail_the_page_reads_carries_the_columns_as_fields(
    live_view: LiveView, beater: ServiceHandle, tailor: ServiceHandle, index: str
) -> None:
    view = through_the_tailor(live_view, tailor, max_rate="1000", columns="level,service")
    page = view.page
    sid, tail_asked = follow_tail(view, index, "kind:cols")
    assert tail_asked == {
        "s": sid,
        "fields": "@timestamp,level,service",
        "max_rate": "1000",
        "format": "sse",
    }
    expect(page.locator("#curl")).to_have_value(
        f"curl -N '{tailor.url}/api/v0.1/docs?s={sid}&fields=@timestamp,level,service&max_rate=1000'"
    )

    doc = {"@timestamp": _at(1), "kind": "cols", "level": "error", "service": "api", "host": "web-1"}
    send(beater, index, [doc, {"kind": "other"}])
    expect(view.rows).to_have_count(1)
    heads = page.locator("#hits-head th").all_inner_texts()
    assert [h.lower() for h in heads] == ["time", "level", "service", "document"]
    # Only the fields asked for arrived (the tailor's fields=).
    assert json.loads(view.row_docs()[0]) == {"@timestamp": _at(1), "level": "error", "service": "api"}


def test_a_delay_shows_hits_in_timestamp_order_and_marks_late_ones(
    live_view: LiveView, beater: ServiceHandle, index: str
) -> None:
    view = live_view.open()
    page = view.page
    page.select_option("#delay", "2")
    view.follow(index, "kind:order")
    expect(page.locator("#held-box")).to_be_visible()

    # One batch, ingested out of @timestamp order: held together, shown in order (newest on top).
    send(beater, index, [{"@timestamp": _at(s), "kind": "order", "n": s} for s in (3, 1, 2)])
    expect(view.rows).to_have_count(3)
    assert [json.loads(d)["n"] for d in view.row_docs()] == [3, 2, 1]
    expect(page.locator("#rows tr.hit.late")).to_have_count(0)

    # Older than a hit already shown: shown all the same, on top, marked late.
    send(beater, index, [{"@timestamp": _at(0), "kind": "order", "n": 0}])
    expect(view.rows).to_have_count(4)
    top = view.rows.first
    expect(top).to_have_class(re.compile(r"\blate\b"))
    expect(top.locator(".late-badge")).to_have_text("late")
    assert json.loads(view.row_docs()[0])["n"] == 0
    expect(page.locator("#rows tr.hit.late")).to_have_count(1)
    view.screenshot("delay-late")


def test_with_a_max_rate_the_tailor_orders_and_its_late_hits_are_marked(
    live_view: LiveView, beater: ServiceHandle, tailor: ServiceHandle, index: str
) -> None:
    view = through_the_tailor(live_view, tailor, max_rate="1000", delay="2")
    _, tail_asked = follow_tail(view, index, "kind:sorted")
    assert {"delay": "2s", "max_rate": "1000", "format": "sse"}.items() <= tail_asked.items()
    expect(view.page.locator("#held-box")).to_be_hidden()  # the tailor holds, not the page

    send(beater, index, [{"@timestamp": _at(s), "kind": "sorted", "n": s} for s in (3, 1, 2)])
    expect(view.rows).to_have_count(3)
    assert [json.loads(d)["n"] for d in view.row_docs()] == [3, 2, 1]
    send(beater, index, [{"@timestamp": _at(0), "kind": "sorted", "n": 0}])
    expect(view.rows).to_have_count(4)
    expect(view.rows.first).to_have_class(re.compile(r"\blate\b"))
    assert json.loads(view.row_docs()[0])["n"] == 0


MAX_RATE = 5
BURST = 100


def test_sampling_shows_k_of_n_per_second_and_the_numbers_add_up(
    live_view: LiveView, beater: ServiceHandle, tailor: ServiceHandle, index: str
) -> None:
    view = through_the_tailor(live_view, tailor, max_rate=str(MAX_RATE))
    page = view.page
    _, tail_asked = follow_tail(view, index, "kind:burst")
    assert tail_asked["max_rate"] == str(MAX_RATE)
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).fragment))["r"] == str(MAX_RATE)

    # One @timestamp for all: in one second whether the tailor counts seconds by it or by arrival.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    send(beater, index, [{"@timestamp": now, "kind": "burst", "n": n} for n in range(BURST)])

    box = page.locator("#sampled-box")
    expect(box).to_be_visible()
    expect(box).to_have_text(re.compile(r"^[\d,]+ of [\d,]+/s sampled$"))
    sent, matched = (int(x.replace(",", "")) for x in re.findall(r"[\d,]+", box.inner_text()))
    assert sent <= MAX_RATE  # at most max_rate sent,
    assert sent < matched  # at least one left out
    view.screenshot("sampled")

    # Every hit of the burst is accounted for: a row, or counted out by a sampled second.
    accounted = (
        "() => { const b = document.querySelector('#sampled-box');"
        " return document.querySelectorAll('#rows tr.hit').length"
        " + Number(b.dataset.matched) - Number(b.dataset.sent); }"
    )
    page.wait_for_function(f"n => ({accounted})() >= n", arg=BURST)
    assert page.evaluate(accounted) == BURST
    assert view.rows.count() < BURST
