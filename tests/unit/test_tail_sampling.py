"""``max_rate=``: the sampler's rule on a fake clock and a seeded random, its reports, and a sampled stream."""

from __future__ import annotations

import json
import random
from collections import Counter

from twisted.internet.task import Clock

from tailor.streaming.format import JsonFraming, NdjsonFraming, SseFraming
from tailor.streaming.request_watch import RequestWatch
from tailor.tails.stream import ClientStream
from tailor.views.sampling import RateSampler, SampledSecond, Verdict
from tests.tailor.tail_client import parse_sse
from tests.unit.test_tailor_client_stream import FakeRequest, Stats

T0 = 1_700_000_000  # a whole second
Rolled = tuple[list[int], SampledSecond | None]


def second_of(sampler: RateSampler[int], now: float, hits: int) -> tuple[Rolled, list[Verdict]]:
    """What ``roll`` gave on entering ``now``'s second (the second before's sample and report),
    and the verdict on each of ``hits`` hits, numbered from 0."""
    rolled = sampler.roll(now)
    return rolled, [sampler.offer(i) for i in range(hits)]


def test_under_the_rate_every_hit_passes_at_once_and_nothing_is_reported():
    sampler: RateSampler[int] = RateSampler(5, random.Random(1))
    for s in range(3):
        rolled, verdicts = second_of(sampler, T0 + s + 0.2, 5)
        assert rolled == ([], None)
        assert verdicts == [Verdict.SEND] * 5
    assert sampler.roll(T0 + 10) == ([], None)


def test_a_burst_after_a_quiet_second_sends_its_first_k_and_is_reported_when_over():
    sampler: RateSampler[int] = RateSampler(3, random.Random(1))
    _, verdicts = second_of(sampler, T0 + 0.5, 10)
    assert verdicts == [Verdict.SEND] * 3 + [Verdict.OUT] * 7
    released, report = sampler.roll(T0 + 1.0)
    assert released == []
    assert report == SampledSecond(T0, matched=10, sent=3)
    assert report.frame() == {"t": "2023-11-14T22:13:20Z", "matched": 10, "sent": 3}


def test_a_steady_rate_sends_exactly_k_a_second_every_hit_equally_likely():
    sampler: RateSampler[int] = RateSampler(5, random.Random(7))
    per_position: Counter[int] = Counter()
    seconds = 4000
    for s in range(seconds):
        (released, report), verdicts = second_of(sampler, T0 + s, 50)
        if s >= 1:
            assert verdicts == [Verdict.HELD] * 50  # the second before was over: a sample is drawn
        if s >= 2:  # the sample of the second before, in arrival order, and its report
            assert released == sorted(released)
            assert len(released) == 5
            assert report == SampledSecond(T0 + s - 1, matched=50, sent=5)
            per_position.update(released)
    # Each of the 50 places in a second is sent about 1 time in 10 (deterministic: seeded).
    frequencies = [per_position[i] / (seconds - 2) for i in range(50)]
    assert all(0.085 < f < 0.115 for f in frequencies), frequencies


def test_never_more_than_k_and_a_second_that_falls_under_the_rate_loses_nothing():
    sampler: RateSampler[int] = RateSampler(4, random.Random(3))
    second_of(sampler, T0, 20)
    (_, first), rising = second_of(sampler, T0 + 1, 60)
    assert first == SampledSecond(T0, 20, 4)
    assert set(rising) == {Verdict.HELD}
    (released, report), falling = second_of(sampler, T0 + 2, 2)
    assert len(released) == 4
    assert report == SampledSecond(T0 + 1, 60, 4)
    assert falling == [Verdict.HELD, Verdict.HELD]
    assert sampler.roll(T0 + 3) == ([0, 1], None)  # two hits, under the rate: both, no report


def test_a_second_with_no_hits_resets_the_rule():
    sampler: RateSampler[int] = RateSampler(2, random.Random(1))
    second_of(sampler, T0, 100)
    _, verdicts = second_of(sampler, T0 + 2, 2)  # T0 + 1 had none
    assert verdicts == [Verdict.SEND, Verdict.SEND]


def test_time_never_goes_back_and_flush_gives_the_open_second():
    sampler: RateSampler[int] = RateSampler(1, random.Random(1))
    second_of(sampler, T0 + 5.5, 3)
    assert sampler.roll(T0 + 4.0) == ([], None)  # an earlier instant stays in the current second
    assert sampler.offer(9) is Verdict.OUT
    assert sampler.flush() == ([], SampledSecond(T0 + 5, matched=4, sent=1))
    assert sampler.flush() == ([], None)
    second_of(sampler, T0 + 6.5, 3)  # over the rate again: T0 + 7 is sampled at its end
    _, verdicts = second_of(sampler, T0 + 7.5, 3)
    assert verdicts == [Verdict.HELD] * 3
    released, report = sampler.flush()
    assert len(released) == 1
    assert report == SampledSecond(T0 + 7, matched=3, sent=1)


def test_counts_add_up_over_the_reported_seconds():
    sampler: RateSampler[int] = RateSampler(3, random.Random(11))
    matched = sent = 0
    reports: list[SampledSecond] = []

    def take(rolled: Rolled) -> None:
        nonlocal sent
        released, report = rolled
        sent += len(released)
        reports.extend([report] if report else [])

    for s in range(50):
        rolled, verdicts = second_of(sampler, T0 + s + 0.1, 10 + s % 7)
        take(rolled)
        matched, sent = matched + len(verdicts), sent + verdicts.count(Verdict.SEND)
    take(sampler.flush())
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
    stream.deliver(hits(3, 4, 5))  # the second before was over k=1: one of these goes at its end
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
