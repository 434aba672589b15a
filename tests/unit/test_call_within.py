"""A router call with a time limit that never cancels the call itself (common/wamp.py)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock

from common.wamp import CallTimedOut, call_within


class Session:
    """A session whose calls answer when the test says, and whose cancel fails as a detached one's."""

    def __init__(self) -> None:
        self.calls: list[Deferred[Any]] = []
        self.cancellable = False

    def call(self, procedure: str, *args: Any) -> Deferred[Any]:
        def cancel(_d: Deferred[Any]) -> None:
            if not self.cancellable:
                raise AttributeError("'NoneType' object has no attribute 'send'")

        d: Deferred[Any] = Deferred(cancel)
        self.calls.append(d)
        return d


def outcome(d: Deferred[Any]) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_an_answer_in_time_is_the_result_and_stops_the_timer() -> None:
    clock, session = Clock(), Session()
    got = outcome(call_within(session, clock, 5, "p", 1))  # type: ignore[arg-type]
    session.calls[0].callback("sid")
    assert got == ["sid"]
    assert clock.getDelayedCalls() == []


def test_no_answer_fails_after_the_timeout_without_cancelling_the_call() -> None:
    clock, session = Clock(), Session()
    got = outcome(call_within(session, clock, 5, "p"))  # type: ignore[arg-type]
    clock.advance(4.9)
    assert got == []
    clock.advance(0.2)
    assert got[0].check(CallTimedOut)
    session.calls[0].errback(RuntimeError("connection lost"))  # late: dropped, not unhandled
    session.calls[0].addErrback(pytest.fail)


def test_giving_up_stops_the_timer_and_tries_to_cancel_the_call() -> None:
    clock, session = Clock(), Session()
    d = call_within(session, clock, 5, "p")  # type: ignore[arg-type]
    got = outcome(d)
    d.cancel()  # the session's canceller fails (it is gone): the caller is answered all the same
    assert got[0].check(CancelledError)
    assert clock.getDelayedCalls() == []
    session.calls[0].callback("late")  # dropped


def test_giving_up_cancels_the_call_on_a_live_session() -> None:
    clock, session = Clock(), Session()
    session.cancellable = True
    d = call_within(session, clock, 5, "p")  # type: ignore[arg-type]
    got = outcome(d)
    d.cancel()
    assert got[0].check(CancelledError)
    assert session.calls[0].called
