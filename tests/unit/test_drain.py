"""One drain for both HTTP faces: what it waits for, what it refuses, when it gives up."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock

from beater.http.drain import Drain
from common.errors import ShuttingDown


class Port:
    def __init__(self) -> None:
        self.listening = True

    def stopListening(self) -> Deferred[None]:
        self.listening = False
        return succeed(None)


class Request:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value


def test_work_in_flight_is_waited_for_then_new_work_is_refused() -> None:
    clock = Clock()
    drain = Drain(clock)
    work: Deferred[str] = Deferred()
    assert drain.track(work) is work
    assert drain.in_flight == 1
    request = Request()
    drain.refuse_new(request)  # not draining yet
    draining = ensureDeferred(drain.drain(Port(), grace=10.0))  # type: ignore[arg-type]
    assert not draining.called
    with pytest.raises(ShuttingDown):
        drain.refuse_new(request)
    assert request.headers == {b"connection": b"close"}
    work.callback("done")
    assert draining.called
    assert (drain.in_flight, drain.giving_up) == (0, False)


def test_past_the_grace_what_still_waits_is_cancelled() -> None:
    clock = Clock()
    drain = Drain(clock)
    cancelled: list[Any] = []
    work: Deferred[None] = Deferred(cancelled.append)
    work.addErrback(lambda failure: failure.trap(CancelledError))
    drain.track(work)
    draining = ensureDeferred(drain.drain(Port(), grace=2.0))  # type: ignore[arg-type]
    clock.advance(2.0)
    assert draining.called
    assert cancelled
    assert drain.giving_up
