"""``max_rate=``: the sampler's rule on a fake clock and a seeded random, its reports, and a sampled stream."""

from __future__ import annotations

import json
import random
from collections import Counter

from twisted.internet.task import Clock

from tailor.streaming.format import JsonFraming, NdjsonFraming, SseFraming
from tailor.streaming.request_watch import RequestWatch
from tailor.tails.stream import ClientStream
from tailor.views.sampling import RateSampler, SampledSecond
from tests.tailor.tail_client import parse_sse
from tests.unit.test_tailor_client_stream import FakeRequest, Stats

T0 = 1_700_000_000  # a whole second


def second_of(sampler: RateSampler, now: float, hits: int) -> tuple[SampledSecond | None, list[bool]]:
    """The report ``roll`` gave on entering ``now``'s second, and which of ``hits`` were sent."""
    report = sampler.roll(now)
    return report, [sampler.admit() for _ in range(hits)]


def test_under_the_rate_every_hit_passes_and_nothing_is_reported():
    sampler = RateSampler(5, random.Random(1))
    for s in range(3):
        report, sent = second_of(sampler, T0 + s + 0.2, 5)
        assert report is None
        assert all(sent)
    assert sampler.roll(T0 + 10) is None


def test_a_burst_after_a_quiet_second_sends_its_first_k_and_is_reported_when_over():
    sampler = RateSampler(3, random.Random(1))
    _, sent = second_of(sampler, T0 + 0.5, 10)
    assert sent == [True] * 3 + [False] * 7
    assert sampler.leaving_out
    report = sampler.roll(T0 + 1.0)
    assert report == SampledSecond(T0, matched=10, sent=3)
    assert report.frame() == {"t": "2023-11-14T22:13:20Z", "matched": 10, "sent": 3}


def test_a_steady_rate_sends_exactly_k_a_second_every_hit_equally_likely():
    sampler = RateSampler(5, random.Random(7))
    per_position: Counter[int] = Counter()
    seconds = 4000
    for s in range(seconds):
        report, sent = second_of(sampler, T0 + s, 50)
        if s >= 2:  # each report is of the second before, which had an expected count
            assert report == SampledSecond(T0 + s - 1, matched=50, sent=5)
        if s >= 1:
            per_position.update(i for i, kept in enumerate(sent) if kept)
    # Each of the 50 places in a second is sent about 1 time in 10 (deterministic: seeded).
    frequencies = [per_position[i] / (seconds - 1) for i in range(50)]
    assert all(0.085 < f < 0.115 for f in frequencies), frequencies


def test_never_more_than_k_when_the_rate_rises_and_a_fall_is_reported_as_it_was():
    sampler = RateSampler(4, random.Random(3))
    second_of(sampler, T0, 20)
    _, rising = second_of(sampler, T0 + 1, 60)  # expected 20, got 60
    assert sum(rising) == 4
    assert not any(rising[20:])  # past the expected count, no slot is left
    report, falling = second_of(sampler, T0 + 2, 2)  # expected 60: each of the two goes 1 time in 15
    assert report == SampledSecond(T0 + 1, 60, 4)
    expected = None if all(falling) else SampledSecond(T0 + 2, 2, sum(falling))
    assert sampler.roll(T0 + 3) == expected


def test_a_second_with_no_hits_resets_the_expectation():
    sampler = RateSampler(2, random.Random(1))
    second_of(sampler, T0, 100)
    _, sent = second_of(sampler, T0 + 2, 2)  # T0 + 1 had none
    assert sent == [True, True]


def test_time_never_goes_back_and_flush_reports_the_open_second():
    sampler = RateSampler(1, random.Random(1))
    second_of(sampler, T0 + 5.5, 3)
    assert sampler.roll(T0 + 4.0) is None  # an earlier instant stays in the current second
    assert sampler.admit() is False
    assert sampler.flush() == SampledSecond(T0 + 5, matched=4, sent=1)
    assert sampler.flush() is None


def test_counts_add_up_over_the_reported_seconds():
    sampler = RateSampler(3, random.Random(11))
    matched = sent = 0
    reports: list[SampledSecond] = []
    for s in range(50):
        report, kept = second_of(sampler, T0 + s + 0.1, 10 + s % 7)
        reports += [report] if report else []
        matched, sent = matched + len(kept), sent + sum(kept)
    reports += [r for r in [sampler.flush()] if r]
    # Every second here left some out, so every hit is in a report.
    assert sum(r.matched for r in reports) == matched
    assert sum(r.sent for r in reports) == sent


# -- a sampled stream on a fake clock -------------------------------------------


def sampled_stream(framing, max_rate=2, limit=None):
    request, clock, stats, gone = FakeRequest(), Clock(), SampledStats(), []
    clock.advance(T0 + 0.25)
    stream = ClientStream(
        request,
        framing,
        clock,
        limit=limit,
        timeout=None,
        heartbeat=60.0,
        max_pending=100_000,
        stats=stats,
        on_gone=gone.append,
        watch=RequestWatch(request),
        sampler=RateSampler(max_rate, random.Random(5)),
    )
    stream.start("sid", lambda seq: f"e:{seq}")
    return stream, request, clock, stats


class SampledStats(Stats):
    def __init__(self):
        super().__init__()
        self.left_out = 0

    def sampled_out(self, n):
        self.left_out += n


def hits(*ns):
    return [(n, {"_index": "l", "_source": {"n": n}}) for n in ns]


def test_ndjson_reports_a_sampled_second_when_it_is_over_without_waiting_for_a_hit():
    stream, request, clock, stats = sampled_stream(NdjsonFraming())
    stream.deliver(hits(1, 2, 3, 4))
    lines = [json.loads(line) for line in bytes(request.written).decode().splitlines()]
    assert [line["_source"]["n"] for line in lines[1:]] == [1, 2]
    clock.advance(0.75)  # the second is over; no hit follows
    last = json.loads(bytes(request.written).decode().splitlines()[-1])
    assert last == {"sampled": {"t": "2023-11-14T22:13:20Z", "matched": 4, "sent": 2}}
    assert (stats.sent, stats.left_out) == (2, 2)
    clock.advance(5)
    assert bytes(request.written).decode().count("sampled") == 1


def test_json_reports_are_elements_of_the_hits_array_and_close_with_the_document():
    stream, request, clock, _ = sampled_stream(JsonFraming(), max_rate=1, limit=3)
    stream.deliver(hits(1, 2))
    clock.advance(1)
    stream.deliver(hits(3, 4, 5))  # expected 2, k=1: one of these may go
    clock.advance(1)
    stream.deliver(hits(6, 7, 8))
    stream.close("timeout")
    doc = json.loads(bytes(request.written))
    reports = [h["sampled"] for h in doc["hits"] if "sampled" in h]
    sent = [h for h in doc["hits"] if "_source" in h]
    assert reports[0] == {"t": "2023-11-14T22:13:20Z", "matched": 2, "sent": 1}
    assert sum(r["sent"] for r in reports) == len(sent)
    assert sum(r["matched"] for r in reports) <= 8


def test_every_format_frames_a_report_in_its_one_place():
    report = {"t": "2023-11-14T22:13:20Z", "matched": 3, "sent": 1}
    json_framing = JsonFraming()
    for first in (True, False):
        opening = json_framing.opening("sid") + (b"" if first else b'\n{"_source": {}}')
        doc = json.loads(opening + json_framing.sampled(report, first) + json_framing.closing("limit"))
        assert doc["hits"][-1] == {"sampled": report}
    assert json.loads(NdjsonFraming().sampled(report, False)) == {"sampled": report}
    assert parse_sse(SseFraming().sampled(report, False).decode()) == [
        {"event": "sampled", "id": None, "data": json.dumps(report)}
    ]


def test_sse_reports_are_sampled_events_without_an_id():
    stream, request, clock, _ = sampled_stream(SseFraming())
    stream.deliver(hits(1, 2, 3))
    clock.advance(1)
    events = parse_sse(bytes(request.written).decode())
    assert [e["event"] for e in events] == ["subscription", "hit", "hit", "sampled"]
    assert [e["id"] for e in events[1:3]] == ["e:1", "e:2"]
    assert events[-1]["id"] is None
    assert json.loads(events[-1]["data"]) == {"t": "2023-11-14T22:13:20Z", "matched": 3, "sent": 2}


def test_a_stream_that_never_samples_says_nothing_and_leaves_no_timer():
    stream, request, clock, stats = sampled_stream(NdjsonFraming(), max_rate=10)
    stream.deliver(hits(1, 2, 3))
    assert len(clock.getDelayedCalls()) == 1  # the heartbeat only
    clock.advance(1)
    assert b"sampled" not in bytes(request.written)
    assert stats.left_out == 0


def test_each_sampled_second_is_reported_at_its_own_end_even_when_the_next_begins_with_hits():
    stream, request, clock, _ = sampled_stream(NdjsonFraming(), max_rate=1)
    stream.deliver(hits(1, 2))  # second T0 leaves one out: a timer for its report at T0 + 1
    clock.rightNow = T0 + 1.1  # the next second's first event is handled before that timer runs
    stream.deliver(hits(3, 4, 5))  # reports T0 at once, and leaves hits of T0 + 1 out
    clock.advance(0)  # the timer set for T0 runs late: nothing left for it to report
    clock.advance(1)  # T0 + 1 is over: reported on the clock, no hit needed
    written = bytes(request.written).decode().splitlines()
    reports = [json.loads(line)["sampled"] for line in written if "sampled" in line]
    assert [r["t"] for r in reports] == ["2023-11-14T22:13:20Z", "2023-11-14T22:13:21Z"]
    assert [r["matched"] for r in reports] == [2, 3]
