"""Tails with fields=, delay= and max_rate= through the real HTTP face, in memory, on a fake clock.

The same paths through real processes are in tests/tailor/test_tail_delay.py
and tests/tailor/test_tail_sampling.py.
"""

from __future__ import annotations

import json

from common.query.identity import sid_for
from tests.memory.doubles import Collected, MemoryTailor, has_result, result
from tests.tailor.tail_client import parse_sse


def ts(second: int) -> str:
    return f"2024-01-01T00:00:{second:02d}Z"


def hit(**source):
    return {"_index": "logs", "_source": source}


def open_tail(tailor: MemoryTailor, **params) -> Collected:
    d = tailor.get("/api/v0.1/docs", i="logs", **params)
    tailor.flush()
    return Collected(tailor, result(d))


def test_a_delay_orders_live_hits_by_timestamp_and_marks_a_late_one():
    tailor = MemoryTailor()
    tail = open_tail(tailor, q="d:1", delay="2s", format="ndjson")
    sid = sid_for("logs", "d:1")
    tailor.session.publish(sid, hit(n=3, **{"@timestamp": ts(3)}), hit(n=1, **{"@timestamp": ts(1)}))
    tailor.clock.advance(1)
    tailor.session.publish(sid, hit(n=2, **{"@timestamp": ts(2)}))
    assert tail.lines()[1:] == []
    tailor.clock.advance(1)
    tailor.session.publish(sid, hit(n=0, **{"@timestamp": ts(0)}))
    lines = tail.lines()[1:]
    assert [line["_source"]["n"] for line in lines] == [1, 2, 3, 0]
    assert [line.get("_late") for line in lines] == [None, None, None, True]
    assert tailor.api.metrics.value("late_hits_total") == 1


def test_tails_of_one_shape_share_a_view_which_goes_with_the_last_one():
    tailor = MemoryTailor()
    sid = sid_for("logs", "v:1")
    first = open_tail(tailor, q="v:1", delay="1s", format="ndjson", limit="1")
    second = open_tail(tailor, q="v:1", delay="1s", format="ndjson", limit="1")
    plain = open_tail(tailor, q="v:1", format="ndjson", limit="1")
    assert len(tailor.api.views) == 1
    assert len(tailor.hub.get(sid).listeners) == 2  # the view and the plain tail
    tailor.session.publish(sid, hit(k=1, **{"@timestamp": ts(1)}))
    assert tailor.api.metrics.value("view_held_hits") == 1
    assert plain.lines()[1:] == [hit(k=1, **{"@timestamp": ts(1)})]
    tailor.clock.advance(1)
    assert first.lines()[1:] == second.lines()[1:] == [hit(k=1, **{"@timestamp": ts(1)})]
    tailor.flush()
    assert [t.done.called for t in (first, second, plain)] == [True, True, True]
    assert len(tailor.api.views) == 0
    assert tailor.session.subscribers(sid) == 0


def test_fields_cut_live_hits_in_every_format_keeping_index_and_id():
    tailor = MemoryTailor()
    sid = sid_for("logs", "f:1")
    tails = {
        fmt: open_tail(tailor, q="f:1", fields="a,c.d", format=fmt, limit="1")
        for fmt in ("json", "ndjson", "sse")
    }
    tailor.session.publish(
        sid, {"_index": "logs", "_id": "x1", "_source": {"a": 1, "b": 2, "c": {"d": 3, "e": 4}}}
    )
    want = {"_index": "logs", "_id": "x1", "_source": {"a": 1, "c": {"d": 3}}}
    assert json.loads(tails["json"].text())["hits"] == [want]
    assert tails["ndjson"].lines()[1:] == [want]
    events = parse_sse(tails["sse"].text())
    assert [json.loads(e["data"]) for e in events if e["event"] == "hit"] == [want]


def test_backfill_then_delayed_live_hits_without_gap_or_duplicate():
    tailor = MemoryTailor()
    tailor.engine.store("logs", {"n": 1, "@timestamp": ts(1)}, {"n": 2, "@timestamp": ts(2)})
    tailor.engine.hold = True
    d = tailor.get("/api/v0.1/docs", i="logs", q="n:*", n="2", delay="2s", format="ndjson")
    tailor.flush()
    sid = sid_for("logs", "n:*")
    # Stored and published around the search: 2 is both in the store and live.
    tailor.session.publish(sid, hit(n=3, **{"@timestamp": ts(3)}), hit(n=2, **{"@timestamp": ts(2)}))
    tailor.engine.release()
    tailor.flush()
    assert has_result(d)
    tail = Collected(tailor, result(d))
    assert [line["_source"]["n"] for line in tail.lines()[1:]] == [1, 2]
    tailor.clock.advance(2)
    tailor.session.publish(sid, hit(n=4, **{"@timestamp": ts(4)}))
    tailor.clock.advance(2)
    assert [line["_source"]["n"] for line in tail.lines()[1:]] == [1, 2, 3, 4]


def test_an_sse_tail_with_a_delay_resumes_from_the_views_history():
    tailor = MemoryTailor()
    sid = sid_for("logs", "r:1")
    first = open_tail(tailor, q="r:1", delay="1s", format="sse")
    tailor.session.publish(sid, hit(n=1, **{"@timestamp": ts(1)}))
    tailor.clock.advance(1)
    (seen,) = [e for e in parse_sse(first.text()) if e["event"] == "hit"]
    # The first client is still there (it keeps the view: no linger here); the same one reconnecting
    # after it would read the same history.
    tailor.session.publish(sid, hit(n=3, **{"@timestamp": ts(3)}), hit(n=2, **{"@timestamp": ts(2)}))
    tailor.clock.advance(1)
    d = tailor.http.get(
        "http://tailor/api/v0.1/docs",
        params={"i": "logs", "q": "r:1", "delay": "1s", "format": "sse"},
        headers={"Last-Event-ID": seen["id"]},
    )
    tailor.flush()
    again = Collected(tailor, result(d))
    hits = [e for e in parse_sse(again.text()) if e["event"] == "hit"]
    assert [json.loads(e["data"])["_source"]["n"] for e in hits] == [2, 3]
    assert [e["event"] for e in parse_sse(again.text())].count("gap") == 0
    epoch, seq = seen["id"].split(":")
    assert [e["id"] for e in hits] == [f"{epoch}:{int(seq) + 1}", f"{epoch}:{int(seq) + 2}"]


def test_max_rate_samples_a_burst_and_reports_the_second_when_it_is_over():
    tailor = MemoryTailor()
    sid = sid_for("logs", "s:1")
    tail = open_tail(tailor, q="s:1", max_rate="3", format="ndjson")
    tailor.session.publish(sid, *[hit(k=k) for k in range(10)])
    tailor.clock.advance(1)
    lines = tail.lines()[1:]
    sent = [line for line in lines if "_source" in line]
    (report,) = [line["sampled"] for line in lines if "sampled" in line]
    assert [line["_source"]["k"] for line in sent] == [0, 1, 2]
    assert report == {"t": "1970-01-01T00:00:00Z", "matched": 10, "sent": 3}
    assert tailor.api.metrics.value("sampled_out_total") == 7
