"""The engine call's deadline: the whole budget from when a worker takes the call (common/engine.py).

The timer lives on the reactor and is armed once at submission; these tests
drive it on a fake clock, the worker's part being the time appended to
``started``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock

from common.engine import watch_deadline


def outcome(d: Deferred[Any]) -> list[Any]:
    seen: list[Any] = []
    d.addBoth(seen.append)
    return seen


def test_a_call_taken_at_once_is_cancelled_when_its_budget_is_spent() -> None:
    clock, d, started = Clock(), Deferred(), [0.0]
    watch_deadline(clock, d, started, 5.0)
    seen = outcome(d)
    clock.advance(4.9)
    assert seen == []
    clock.advance(0.1)
    assert len(seen) == 1
    assert seen[0].check(CancelledError)
    assert clock.getDelayedCalls() == []


def test_the_budget_starts_when_a_worker_takes_the_call_not_while_it_queues() -> None:
    clock, d, started = Clock(), Deferred(), []
    watch_deadline(clock, d, started, 5.0)
    seen = outcome(d)
    clock.advance(3.0)
    started.append(clock.seconds())  # a worker takes it after 3 s in the queue
    clock.advance(4.0)  # 7 s after submission, 4 s after it was taken
    assert seen == []
    clock.advance(1.0)
    assert seen[0].check(CancelledError)


def test_a_call_still_queued_when_the_budget_ends_keeps_waiting_for_a_worker() -> None:
    clock, d, started = Clock(), Deferred(), []
    watch_deadline(clock, d, started, 5.0)
    seen = outcome(d)
    clock.advance(12.0)
    assert seen == []
    started.append(clock.seconds())
    clock.advance(5.0)
    assert seen[0].check(CancelledError)


def test_an_answer_in_time_disarms_the_timer() -> None:
    clock, d, started = Clock(), Deferred(), [0.0]
    watch_deadline(clock, d, started, 5.0)
    d.callback("answer")
    assert clock.getDelayedCalls() == []
    assert outcome(d) == ["answer"]


def test_an_answer_after_an_early_check_disarms_the_re_armed_timer() -> None:
    clock, d, started = Clock(), Deferred(), []
    watch_deadline(clock, d, started, 5.0)
    clock.advance(2.0)
    started.append(clock.seconds())
    clock.advance(4.0)  # the first timer fired early and re-armed for the rest
    assert len(clock.getDelayedCalls()) == 1
    d.callback("late but in time")
    assert clock.getDelayedCalls() == []
    assert outcome(d) == ["late but in time"]
