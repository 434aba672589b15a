"""Counting by ``@timestamp`` with ``delay=``: the event time read, the windows kept, the counter's clock.

Pure parts and the shared counter on a fake clock (twisted.internet.task.Clock),
with a recording stand-in for its streams; the streams themselves over HTTP:
tests/memory/test_tailor_counts_delay.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from twisted.internet.task import Clock

from tailor.counts.counting import WindowCounts
from tailor.counts.delayed_counter import DelayedCounter, LateTally, PlacedHit
from tailor.counts.event_time import KEPT_WINDOWS, EventWindows, Placed, event_time, kept_windows
from tailor.subscriptions.resume import SequencedHit


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1970-01-01T00:16:40Z", 1000.0),
        ("1970-01-01T00:16:40.250Z", 1000.25),
        ("1970-01-01T00:16:40.250000999Z", 1000.25),  # nanoseconds: cut to microseconds
        ("1970-01-01T01:16:40+01:00", 1000.0),
        ("1970-01-01T00:16:40", 1000.0),  # no offset: UTC, as the engine reads it
        ("1970-01-02", 86400.0),
        (1000250, 1000.25),  # numbers and digit strings: epoch milliseconds
        ("1000250", 1000.25),
        (1000250.5, 1000.2505),
    ],
)
def test_event_time_reads_what_the_engine_s_date_field_reads(value, seconds):
    assert event_time({"@timestamp": value}) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "source",
    [
        {},
        {"@timestamp": None},
        {"@timestamp": True},
        {"@timestamp": "yesterday"},
        {"@timestamp": "1970-01-01 00:16:40"},  # not ISO 8601's T: the engine would not read it
        {"@timestamp": "1970-13-01"},
        {"@timestamp": float("nan")},
        {"@timestamp": {"value": 1}},
        "not a document",
    ],
)
def test_event_time_is_none_without_a_timestamp_the_engine_reads(source):
    assert event_time(source) is None


def test_closed_windows_are_kept_a_minute_in_at_most_sixty_windows_and_at_least_one():
    assert kept_windows(1.0) == 60
    assert kept_windows(0.1) == KEPT_WINDOWS
    assert kept_windows(10.0) == 6
    assert kept_windows(3600.0) == 1


def stamped(t: float) -> dict:
    return {"@timestamp": round(t * 1000)}


def test_a_hit_s_window_is_its_timestamp_s_unless_it_has_none_or_runs_ahead_by_more_than_the_delay():
    windows = EventWindows(None, 1.0, 2.0, now=1000.5)
    assert windows.place(stamped(995.9), 1000.5) == 995_000
    assert windows.place(stamped(1002.4), 1000.5) == 1002_000  # a fast clock, within the delay
    assert windows.place(stamped(1002.6), 1000.5) == 1000_000  # further ahead: by arrival
    assert windows.place({"level": "x"}, 1000.5) == 1000_000


def test_windows_open_until_delay_after_their_end_then_kept_for_revision_then_too_late():
    windows = EventWindows("s", 1.0, 2.0, now=1000.5)
    assert windows.closed_until == 998_000  # [998, 999) ends at 999, closes at 1001
    assert windows.next_close == 1001.0
    assert windows.add(998_000, {"s": "a"}) is Placed.OPEN
    assert windows.close_next(1000.99) is None
    start, counts = windows.close_next(1001.0)
    assert (start, counts.total, dict(counts.values)) == (998_000, 1, {"a": 1})
    assert windows.close_next(1001.0) is None
    assert windows.add(998_000, {"s": "b"}) is Placed.REVISED
    assert windows.kept[998_000].total == 2
    assert windows.horizon == 999_000 - 60_000
    assert windows.add(windows.horizon - 1000, {}) is Placed.TOO_LATE


def test_memory_is_bounded_whatever_the_timestamps():
    windows = EventWindows(None, 0.1, 10.0, now=1000.0)
    now = 1000.0
    for step in range(3000):  # five minutes of hits stamped all over the past and the future
        now = 1000.0 + step * 0.1
        for offset in (-400.0, -30.0, -9.95, -0.05, 0.0, 9.9, 300.0):
            windows.add(windows.place(stamped(now + offset), now), {})
        while windows.close_next(now) is not None:
            pass
    assert len(windows.kept) <= KEPT_WINDOWS
    assert len(windows.open) <= 2 * 10.0 / 0.1 + 2


class Recorder:
    """A delayed count stream as its counter sees it: what it was handed, nothing sent."""

    def __init__(self, private: bool = False) -> None:
        self.private = private
        self.closed: list[tuple[float, int]] = []
        self.revised: list[tuple[int, int]] = []
        self.placed: list[int] = []
        self.windows: EventWindows | None = None

    def bind(self, windows: EventWindows) -> None:
        self.windows = windows

    def window_closed(self, start: float, shared: WindowCounts) -> None:
        self.closed.append((start, shared.total))

    def observe_placed(self, placed: Sequence[PlacedHit]) -> int:
        self.placed.extend(start for start, _ in placed)
        return 0

    def revise(self, start: int, shared: WindowCounts) -> bool:
        self.revised.append((start, shared.total))
        return True

    def gap(self, info: dict) -> None:
        return None

    def fail(self, error: str, reason: str) -> None:
        return None


def entries(*times: float) -> list[SequencedHit]:
    return [SequencedHit(i, {"_source": stamped(t)}) for i, t in enumerate(times)]


def test_the_counter_hands_out_each_window_delay_after_its_end_empty_ones_included():
    clock = Clock()
    clock.advance(1000.5)
    counter = DelayedCounter("sid", None, 1.0, 2.0, clock, LateTally())
    stream = Recorder()
    counter.add(stream)
    assert stream.windows is counter.windows
    counter.deliver(entries(1000.2, 998.7, 1000.9))
    clock.advance(0.5)  # 1001: [998, 999) closes
    clock.advance(2.0)  # 1003: [999, 1000), [1000, 1001)
    counter.deliver(entries(1001.5))
    clock.pump([1.0, 1.0])
    assert stream.closed == [(998.0, 1), (999.0, 0), (1000.0, 2), (1001.0, 1), (1002.0, 0)]
    assert counter.last is not None
    assert counter.hits_total == 4


def test_late_hits_revise_kept_windows_and_too_late_ones_are_tallied():
    clock = Clock()
    clock.advance(1000.0)
    late = LateTally()
    counter = DelayedCounter("sid", None, 1.0, 2.0, clock, late)
    shared, private = Recorder(), Recorder(private=True)
    counter.add(shared)
    counter.add(private)
    counter.deliver(entries(1000.1))
    clock.advance(5.0)  # [1000, 1001) and [1001, 1002) closed
    counter.deliver(entries(1000.2, 1001.1, 1000.3, 900.0))
    assert shared.revised == [(1000_000, 3), (1001_000, 1)]
    assert private.placed == [1000_000, 1000_000, 1001_000, 1000_000, 900_000]
    assert (late.revisions, late.too_late) == (4, 1)


def test_a_stream_done_with_its_own_windows_leaves_the_private_set_at_the_next_close():
    clock = Clock()
    counter = DelayedCounter("sid", None, 1.0, 1.0, clock, LateTally())
    stream = Recorder(private=True)
    counter.add(stream)
    assert stream in counter.private
    stream.private = False
    clock.advance(2.0)
    assert stream not in counter.private
    counter.deliver(entries(0.5))
    assert stream.placed == []
