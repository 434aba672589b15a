"""``max_rate=``: at a high match rate each tail is sampled and says so per second, through the real stack."""

from __future__ import annotations

import pytest

from devstack.metrics_page import metric
from tests.tailor.helpers import send
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration

#: Requests of ``PER_REQUEST`` documents, one after the other: each is one beater batch, so one
#: event of 50 hits, more than ``RATE``: every second with hits leaves some out, and is reported.
REQUESTS, PER_REQUEST, RATE = 20, 50, 10


def test_sampled_reports_add_up_to_what_was_sent_and_what_matched_in_every_format(tailor, beater, index):
    params = {"i": index, "q": "load:high", "max_rate": RATE}
    tails = {fmt: Tail(tailor.url, {**params, "format": fmt}) for fmt in ("json", "ndjson", "sse")}
    left_out_before = metric(tailor.url, "estrom_tailor_sampled_out_total")
    for r in range(REQUESTS):
        send(beater.url, index, [{"load": "high", "r": r, "i": i} for i in range(PER_REQUEST)])
    ingested = REQUESTS * PER_REQUEST
    try:
        for fmt, tail in tails.items():
            # Each second is reported once it is over: no later hit needed.
            tail.wait(
                lambda t: sum(s["matched"] for s in t.sampled()) >= ingested, 60, f"{fmt}: every second"
            )
    finally:
        for tail in tails.values():
            tail.close()
    sent_total = 0
    for fmt, tail in tails.items():
        reports, hits = tail.sampled(), tail.documents()
        assert sum(s["matched"] for s in reports) == ingested, fmt
        assert sum(s["sent"] for s in reports) == len(hits), fmt
        assert all(0 <= s["sent"] <= RATE < s["matched"] for s in reports), (fmt, reports)
        starts = [s["t"] for s in reports]
        assert starts == sorted(set(starts)), fmt  # one report a second, in order
        assert len({(h["_source"]["r"], h["_source"]["i"]) for h in hits}) == len(hits), fmt
        sent_total += len(hits)
    assert (
        metric(tailor.url, "estrom_tailor_sampled_out_total") - left_out_before == 3 * ingested - sent_total
    )
    sse_reports = [e for e in tails["sse"].events if e["event"] == "sampled"]
    assert all(e["id"] is None for e in sse_reports)


def test_a_tail_without_max_rate_on_the_same_sid_gets_every_hit(tailor, beater, index):
    sampled = Tail(tailor.url, {"i": index, "q": "load:mixed", "max_rate": 1, "format": "ndjson"})
    whole = Tail(tailor.url, {"i": index, "q": "load:mixed", "format": "ndjson"})
    send(beater.url, index, [{"load": "mixed", "i": i} for i in range(30)])
    try:
        assert len(whole.wait_hits(30, 30)) == 30
        sampled.wait(lambda t: sum(s["matched"] for s in t.sampled()) >= 30, 30, "the sampled second")
    finally:
        sampled.close()
        whole.close()
    assert [line for line in whole.lines if "sampled" in line] == []
    assert sum(s["sent"] for s in sampled.sampled()) == len(sampled.documents()) == 1
