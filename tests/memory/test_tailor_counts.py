"""``GET /api/v0.1/counts`` in memory: frames per window of a known stream, on a clock the test moves.

The real resource, counters, hub and framing over StubTreq; hits published
on the memory router double. Real processes: tests/tailor/test_counts.py.
"""

from __future__ import annotations

from common.query.identity import sid_for
from tests.memory.doubles import Collected, MemoryTailor, result


def hit(**source):
    return {"_index": "logs", "_source": source}


def open_counts(tailor: MemoryTailor, **params) -> Collected:
    d = tailor.get("/api/v0.1/counts", i="logs", **params)
    tailor.flush()
    response = result(d)
    assert response.code == 200, result(tailor.http.content(response))
    return Collected(tailor, response)


def test_one_frame_per_window_empty_ones_included():
    tailor = MemoryTailor()
    tailor.clock.advance(1000.5)  # mid-window: the first frame is partial, counted from the join
    counts = open_counts(tailor, q="level:error", every="1")
    sid = sid_for("logs", "level:error")
    tailor.session.publish(sid, hit(level="error"), hit(level="error"))
    tailor.clock.advance(0.5)  # closes [1000, 1001)
    tailor.clock.advance(1)  # [1001, 1002): nothing
    tailor.session.publish(sid, hit(level="error"))
    tailor.clock.advance(1)
    lines = counts.lines()
    assert lines[0] == {"subscription_id": sid}
    assert lines[1:] == [
        {"t": "1970-01-01T00:16:40Z", "total": 2, "by": {}},
        {"t": "1970-01-01T00:16:41Z", "total": 0, "by": {}},
        {"t": "1970-01-01T00:16:42Z", "total": 1, "by": {}},
    ]


def test_by_keeps_the_top_k_and_sums_the_rest_and_the_missing():
    tailor = MemoryTailor()
    counts = open_counts(tailor, q="*", by="service", k="2", every="2")
    sid = sid_for("logs", "*")
    hits = [hit(service=s) for s in "aaaabbbcd"] + [hit(other=1), hit(service=None)]
    tailor.session.publish(sid, *hits)
    tailor.clock.advance(2)
    frame = counts.lines()[1]
    assert frame == {
        "t": "1970-01-01T00:00:00Z",
        "total": 11,
        "by": {"a": 4, "b": 3, "_other": 2, "_missing": 2},
    }


def test_nested_and_dotted_fields_and_arrays():
    tailor = MemoryTailor()
    counts = open_counts(tailor, q="*", by="http.status")
    sid = sid_for("logs", "*")
    tailor.session.publish(
        sid,
        hit(http={"status": 200}),
        hit(**{"http.status": 200}),
        hit(http=[{"status": 500}, {"status": 200}]),
        hit(http={"status": True}),
        hit(http="flat"),
    )
    tailor.clock.advance(1)
    assert counts.lines()[1]["by"] == {"200": 3, "500": 1, "true": 1, "_missing": 1}


def test_viewers_of_one_key_share_one_counter_and_one_subscription():
    tailor = MemoryTailor()
    first = open_counts(tailor, q="x:1", by="service", k="1")
    second = open_counts(tailor, q="x:1", by="service", k="5")
    sid = sid_for("logs", "x:1")
    assert len(tailor.api.counters) == 1
    assert tailor.session.subscribers(sid) == 1
    tailor.clock.advance(1)  # both now count from the shared counter
    tailor.session.publish(sid, hit(service="a"), hit(service="a"), hit(service="b"))
    tailor.clock.advance(1)
    assert first.lines()[-1]["by"] == {"a": 2, "_other": 1}
    assert second.lines()[-1]["by"] == {"a": 2, "b": 1}


def test_limit_ends_after_that_many_frames_and_the_last_out_unsubscribes():
    tailor = MemoryTailor()
    counts = open_counts(tailor, q="y:1", limit="2", format="sse")
    tailor.clock.advance(2)
    tailor.flush()
    assert counts.done.called
    text = counts.text()
    assert text.count("event: count") == 2
    assert text.rstrip().endswith('data: {"end": "limit"}')
    assert tailor.session.subscribers(sid_for("logs", "y:1")) == 0
    assert len(tailor.api.counters) == 0


def test_bad_count_parameters_are_400():
    tailor = MemoryTailor()
    for params, code in (
        ({"q": "x"}, "missing_parameter"),
        ({"i": "logs", "q": "x", "every": "0"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "every": "0.0001"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "k": "0"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "k": "1000"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "by": "a..b"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "since": "soon"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "since": "30d", "every": "1"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "format": "json"}, "invalid_parameter"),
    ):
        d = tailor.http.get("http://tailor/api/v0.1/counts", params=params)
        tailor.flush()
        response = result(d)
        body = result(tailor.http.json_content(response))
        assert (response.code, body["error"]) == (400, code), params
    assert tailor.session.calls == []


def test_per_sid_metrics_exist_while_counted():
    tailor = MemoryTailor()
    open_counts(tailor, q="m:1", by="service", limit="3")
    sid = sid_for("logs", "m:1")
    tailor.clock.advance(1)
    tailor.session.publish(sid, hit(service="api"), hit(service="api"))
    tailor.clock.advance(1)
    text = result(tailor.http.text_content(result(_get(tailor, "/metrics"))))
    assert f'estrom_tailor_count_hits_total{{sid="{sid}"}} 2' in text
    assert f'estrom_tailor_count_rate{{sid="{sid}"}} 2' in text
    assert f'estrom_tailor_count_last_window{{field="service",sid="{sid}",value="api"}} 2' in text
    tailor.clock.advance(1)  # third frame: the stream ends, the series go
    text = result(tailor.http.text_content(result(_get(tailor, "/metrics"))))
    assert sid not in text


def _get(tailor, path):
    d = tailor.get(path)
    tailor.flush()
    return d
