"""The tailor's subscription hub across router losses, on a fake session and clock.

The real-router paths are in tests/faults/test_router_restart.py; these pin
down the orderings a real router seldom produces on cue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock

from tailor.subscriptions.hub import SubscriptionHub


class FakeSession:
    """Subscriptions stay pending until the test settles them."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Any]] = []

    def is_attached(self) -> bool:
        return True

    def subscribe(self, handler: Any, topic: str) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d


class FakeWamp:
    def __init__(self) -> None:
        self.session: FakeSession | None = None
        self.joined: list[Any] = []

    def when_joined(self, callback: Any) -> None:
        self.joined.append(callback)

    def require(self) -> FakeSession:
        assert self.session is not None
        return self.session

    def rejoin(self) -> FakeSession:
        self.session = FakeSession()
        for callback in self.joined:
            callback(self.session)
        return self.session


class Stream:
    """A listener that bridges gaps (NDJSON/SSE) and records what it was told."""

    bridges_gaps = True

    def __init__(self) -> None:
        self.failed: list[tuple[str, str]] = []
        self.gaps: list[dict[str, Any]] = []

    def deliver(self, entries: Sequence[Any]) -> None:
        pass

    def fail(self, error: str, reason: str) -> None:
        self.failed.append((error, reason))

    def gap(self, info: dict[str, Any]) -> None:
        self.gaps.append(info)


class Subscription:
    def unsubscribe(self) -> Deferred[None]:
        return Deferred()


def joined_hub() -> tuple[SubscriptionHub, FakeWamp, Clock, Stream]:
    wamp, clock, stream = FakeWamp(), Clock(), Stream()
    hub = SubscriptionHub(wamp, clock, history_size=0, sse_linger=0, router_wait=60)  # type: ignore[arg-type]
    session = wamp.rejoin()
    joined = ensureDeferred(hub.join("0123456789abcdef", stream))
    session.pending.pop().callback(Subscription())
    assert joined.called
    return hub, wamp, clock, stream


def test_a_stream_waits_through_a_loss_and_gets_one_gap_notice() -> None:
    hub, wamp, clock, stream = joined_hub()
    hub.router_lost("connection to the router lost")
    clock.advance(5)
    session = wamp.rejoin()
    session.pending.pop().callback(Subscription())
    assert stream.failed == []
    assert len(stream.gaps) == 1
    assert stream.gaps[0]["seconds"] == 5


def test_a_second_loss_during_the_resubscription_keeps_the_stream_waiting() -> None:
    hub, wamp, _clock, stream = joined_hub()
    hub.router_lost("connection to the router lost")
    session = wamp.rejoin()
    # Lost again before the router confirmed the new subscription.
    hub.router_lost("connection to the router lost again")
    session.pending.pop().errback(RuntimeError("transport closed"))
    assert stream.failed == []
    assert len(hub) == 1
    session = wamp.rejoin()
    session.pending.pop().callback(Subscription())
    assert stream.failed == []
    assert len(stream.gaps) == 1


def test_a_stream_ends_when_the_router_stays_away() -> None:
    hub, _wamp, clock, stream = joined_hub()
    hub.router_lost("connection to the router lost")
    clock.advance(61)
    assert [error for error, _ in stream.failed] == ["router_unavailable"]
    assert len(hub) == 0


def test_a_refused_resubscription_ends_the_stream_with_the_reason() -> None:
    hub, wamp, _clock, stream = joined_hub()
    hub.router_lost("connection to the router lost")
    session = wamp.rejoin()
    session.pending.pop().errback(RuntimeError("not authorized"))
    assert [error for error, _ in stream.failed] == ["router_unavailable"]
    assert "not authorized" in stream.failed[0][1]
    assert len(hub) == 0
