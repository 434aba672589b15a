"""SSE resume planning and shared fan-out, without a router."""

from __future__ import annotations

from tailor.subscriptions.resume import plan_resume
from tailor.subscriptions.shared import SharedSubscription


def history(first: int, last: int):
    return [(seq, {"n": seq}) for seq in range(first, last + 1)]


def test_covered_resume_replays_exactly_the_rest():
    plan = plan_resume("ep:3", "ep", 7, history(1, 6))
    assert plan.gap is None
    assert [seq for seq, _ in plan.replay] == [4, 5, 6]


def test_up_to_date_resume_replays_nothing():
    plan = plan_resume("ep:6", "ep", 7, history(1, 6))
    assert plan.gap is None
    assert plan.replay == []


def test_resume_just_at_the_edge_of_history_has_no_gap():
    plan = plan_resume("ep:3", "ep", 10, history(4, 9))
    assert plan.gap is None
    assert [seq for seq, _ in plan.replay] == [4, 5, 6, 7, 8, 9]


def test_history_too_short_reports_how_many_were_missed():
    plan = plan_resume("ep:1", "ep", 10, history(6, 9))
    assert plan.gap is not None
    assert plan.gap["missed"] == 4  # 2, 3, 4, 5
    assert plan.gap["last_event_id"] == "ep:1"
    assert [seq for seq, _ in plan.replay] == [6, 7, 8, 9]


def test_empty_history_counts_everything_since_as_missed():
    plan = plan_resume("ep:2", "ep", 5, [])
    assert plan.gap["missed"] == 2
    assert plan.replay == []


def test_other_epoch_or_garbage_is_an_unknown_gap():
    for last in ("other:3", "ep:99", "ep:x", "nonsense", "ep:-1"):
        plan = plan_resume(last, "ep", 7, history(1, 6))
        assert plan.gap is not None
        assert plan.gap["missed"] is None
        assert plan.replay == []


class Sink:
    def __init__(self, sub=None, leave_after=None):
        self.got = []
        self.sub = sub
        self.leave_after = leave_after

    def deliver(self, entries):
        self.got.extend(entries)
        if self.leave_after is not None and len(self.got) >= self.leave_after:
            self.sub.listeners.discard(self)

    def fail(self, error, reason):
        raise AssertionError("not expected")


class Broken(Sink):
    def deliver(self, entries):
        raise RuntimeError("boom")


def test_fan_out_numbers_hits_and_survives_broken_and_leaving_listeners():
    sub = SharedSubscription("s", history_size=3)
    sub.keep_history = True
    a, b = Sink(), Sink(sub, leave_after=1)
    sub.listeners |= {a, b, Broken()}
    sub.on_event({"n": 1}, {"n": 2})
    sub.on_event({"n": 3})
    sub.on_event({"n": 4}, {"n": 5})
    assert [seq for seq, _ in a.got] == [1, 2, 3, 4, 5]
    assert [seq for seq, _ in b.got] == [1, 2]
    assert [seq for seq, _ in sub.history] == [3, 4, 5]
    assert sub.event_id(4) == f"{sub.epoch}:4"


def test_no_history_unless_asked():
    sub = SharedSubscription("s", history_size=3)
    sub.on_event({"n": 1})
    assert list(sub.history) == []
    assert sub.last_seq == 1
