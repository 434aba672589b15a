"""``GET /api/v0.1/counts?delay=`` in memory: windows by ``@timestamp``, closed ``delay`` after their end.

The real resource, counters and streams on a clock the test moves; hits
published on the memory router double with the ``@timestamp`` each test
chooses. Real processes: tests/tailor/test_counts_delay.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from common.query.identity import sid_for
from tests.memory.doubles import MemoryTailor, result
from tests.memory.test_tailor_counts import hit, open_counts


def at(t: float, **source):
    """A hit stamped ``t`` seconds after the epoch."""
    stamp = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return hit(**{"@timestamp": stamp, **source})


def t(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics(tailor: MemoryTailor) -> str:
    d = tailor.get("/metrics")
    tailor.flush()
    return result(tailor.http.text_content(result(d)))


def test_hits_count_in_their_own_window_which_closes_delay_after_its_end():
    tailor = MemoryTailor()
    tailor.clock.advance(1000.5)
    counts = open_counts(tailor, q="*", by="service", every="1", delay="2s")
    sid = sid_for("logs", "*")
    publish = tailor.session.publish
    publish(sid, at(1000.2, service="a"), at(1001.2, service="b"))  # the second: a fast clock, within delay
    publish(sid, at(999.5, service="a"))  # before the stream's first window: not its
    tailor.clock.advance(1.5)  # 1002: [1000, 1001) ended, still open for 2 s
    publish(sid, at(1000.9, service="b"))  # late, within the delay
    assert counts.lines()[1:] == []
    tailor.clock.advance(1)  # 1003: [1000, 1001) closes
    publish(sid, hit(service="c"))  # no @timestamp: by arrival, in [1003, 1004)
    tailor.clock.advance(3)  # 1006: [1001, 1002), [1002, 1003), [1003, 1004) close
    assert counts.lines()[1:] == [
        {"t": t(1000), "total": 2, "by": {"a": 1, "b": 1}},
        {"t": t(1001), "total": 1, "by": {"b": 1}},
        {"t": t(1002), "total": 0, "by": {}},
        {"t": t(1003), "total": 1, "by": {"c": 1}},
    ]


def test_a_hit_later_than_the_delay_sends_its_window_again_and_older_ones_are_only_counted():
    tailor = MemoryTailor()
    tailor.clock.advance(1000)
    counts = open_counts(tailor, q="*", by="service", k="1", every="1", delay="2s")
    sid = sid_for("logs", "*")
    tailor.session.publish(sid, at(1000.1, service="a"), at(1000.2, service="b"), at(1000.3, service="b"))
    tailor.clock.advance(3)
    assert counts.lines()[-1] == {"t": t(1000), "total": 3, "by": {"b": 2, "_other": 1}}
    tailor.clock.advance(10)
    tailor.session.publish(sid, at(1000.4, service="a"), at(1000.5, service="a"))
    assert counts.lines()[-1] == {"t": t(1000), "total": 5, "by": {"a": 3, "_other": 2}, "revised": True}
    tailor.clock.advance(100)  # the window is no longer kept
    tailor.session.publish(sid, at(1000.6, service="a"))
    n = len(counts.lines())
    tailor.clock.advance(1)
    assert [f for f in counts.lines()[n:] if f.get("revised")] == []
    text = metrics(tailor)
    assert "estrom_tailor_count_revisions_total 1.0" in text
    assert "estrom_tailor_count_too_late_total 1.0" in text


def test_windows_follow_each_other_and_limit_counts_windows_not_revisions():
    tailor = MemoryTailor()
    tailor.clock.advance(1000)
    counts = open_counts(tailor, q="*", every="0.5", delay="1s", limit="3", format="sse")
    sid = sid_for("logs", "*")
    tailor.session.publish(sid, at(1000.1))
    tailor.clock.advance(1.5)  # [1000, 1000.5) sent
    tailor.session.publish(sid, at(1000.2))  # sent again
    tailor.clock.advance(1)
    tailor.flush()
    assert counts.done.called
    text = counts.text()
    assert text.count("event: count") == 4
    assert '"revised": true' in text
    assert tailor.session.subscribers(sid) == 0
    assert len(tailor.api.counters) == 0


def test_counters_are_shared_per_delay_and_without_delay_counts_by_arrival():
    tailor = MemoryTailor()
    tailor.clock.advance(1000)
    delayed = open_counts(tailor, q="x:1", every="1", delay="1s")
    also = open_counts(tailor, q="x:1", every="1", delay="1000ms")
    longer = open_counts(tailor, q="x:1", every="1", delay="2s")
    arrival = open_counts(tailor, q="x:1", every="1")
    sid = sid_for("logs", "x:1")
    assert len(tailor.api.counters) == 3
    assert tailor.session.subscribers(sid) == 1
    tailor.session.publish(sid, at(1000.5), at(1000.6))
    tailor.clock.advance(1)
    tailor.session.publish(sid, at(1000.7))  # arrives in [1001, 1002)
    tailor.clock.advance(3)
    assert arrival.lines()[1:4] == [
        {"t": t(1000), "total": 2, "by": {}},
        {"t": t(1001), "total": 1, "by": {}},
        {"t": t(1002), "total": 0, "by": {}},
    ]
    for stream in (delayed, also, longer):
        assert stream.lines()[1] == {"t": t(1000), "total": 3, "by": {}}


def test_since_with_delay_counts_stored_documents_once_and_revises_its_own_windows():
    tailor = MemoryTailor()
    tailor.clock.advance(1000.5)
    stored = at(999.5, n=1)
    tailor.engine.store("logs", stored["_source"])  # stored, then published after the stream opened
    counts = open_counts(tailor, q="*", every="1", delay="2s", since="5s")
    sid = sid_for("logs", "*")
    # The memory engine counts nothing (no aggregations): the frames are the live hits alone.
    tailor.session.publish(sid, stored, at(999.7, n=2))
    lines = counts.lines()
    assert [f["t"] for f in lines[1:]] == [t(995), t(996), t(997)]  # closed by 1000.5 with delay=2s
    tailor.clock.advance(2)  # 1002.5: [998, 999), [999, 1000) closed
    assert counts.lines()[4:] == [
        {"t": t(998), "total": 0, "by": {}},
        {"t": t(999), "total": 1, "by": {}},
    ]
    tailor.session.publish(sid, at(996.1, n=3))
    assert counts.lines()[-1] == {"t": t(996), "total": 1, "by": {}, "revised": True}


def test_a_later_viewer_starts_at_the_window_it_joined_in_with_the_shared_counts():
    tailor = MemoryTailor()
    tailor.clock.advance(1000)
    first = open_counts(tailor, q="*", every="1", delay="2s")
    sid = sid_for("logs", "*")
    tailor.session.publish(sid, at(1000.5))
    tailor.clock.advance(1.2)
    tailor.session.publish(
        sid, at(1001.1)
    )  # before the second viewer: by @timestamp, its window's all the same
    second = open_counts(tailor, q="*", every="1", delay="2s")
    assert len(tailor.api.counters) == 1
    tailor.session.publish(sid, at(1001.2), at(1000.7))
    tailor.clock.advance(3)
    assert first.lines()[1:] == [{"t": t(1000), "total": 2, "by": {}}, {"t": t(1001), "total": 2, "by": {}}]
    assert second.lines()[1:] == [{"t": t(1001), "total": 2, "by": {}}]
    tailor.clock.advance(100)
    tailor.session.publish(sid, at(1000.9))  # too late for both
    tailor.session.publish(sid, at(1100.5))  # sent again to both: [1100, 1101) closed at 1103
    assert first.lines()[-1] == second.lines()[-1] == {"t": t(1100), "total": 1, "by": {}, "revised": True}
