"""Shared views on a fake router session and clock: sharing, fields, delay, late hits, lingering, gaps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from common.contract import topic_for
from common.wamp import RouterUnavailable
from tailor.streaming.format import EncodedHit, hit_json
from tailor.subscriptions.hub import SubscriptionHub
from tailor.subscriptions.resume import SequencedHit
from tailor.views.view import Views, ViewShape, ViewStats

SID = "0123456789abcdef"


class Subscription:
    def __init__(self, session: Session, topic: str) -> None:
        self.session, self.topic, self.active = session, topic, True

    def unsubscribe(self) -> Deferred[None]:
        self.active = False
        del self.session.handlers[self.topic]
        return succeed(None)


class Session:
    """The router: subscriptions answered at once (or held), events published to the handler."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.hold: list[Deferred[Any]] | None = None

    def is_attached(self) -> bool:
        return True

    def subscribe(self, handler: Any, topic: str) -> Deferred[Any]:
        self.handlers[topic] = handler
        if self.hold is not None:
            d: Deferred[Any] = Deferred()
            self.hold.append(d)
            return d
        return succeed(Subscription(self, topic))

    def publish(self, *hits: dict[str, Any]) -> None:
        self.handlers[topic_for(SID)](*hits)


class Wamp:
    def __init__(self) -> None:
        self.session: Session | None = Session()
        self.joined: list[Any] = []

    def when_joined(self, callback: Any) -> None:
        self.joined.append(callback)

    def require(self) -> Session:
        if self.session is None:
            raise RouterUnavailable("not connected to the router")
        return self.session


class Tail:
    """A view's member, as a ClientStream is: records what it is given."""

    def __init__(self, bridges_gaps: bool = True) -> None:
        self.bridges_gaps = bridges_gaps
        self.got: list[SequencedHit] = []
        self.gaps: list[dict[str, Any]] = []
        self.failed: list[str] = []

    def deliver(self, entries: Sequence[SequencedHit]) -> None:
        self.got.extend(entries)

    def gap(self, info: dict[str, Any]) -> None:
        self.gaps.append(info)

    def fail(self, error: str, reason: str) -> None:
        self.failed.append(error)

    def sources(self) -> list[Any]:
        return [hit["_source"] for _, hit in self.got]


class Stats(ViewStats):
    def __init__(self) -> None:
        self.lates = self.earlies = 0

    def late(self, n: int) -> None:
        self.lates += n

    def early(self, n: int) -> None:
        self.earlies += n


class Setup:
    def __init__(
        self, max_held_bytes: int = 100_000, sse_linger: float = 0.0, projections: list | None = None
    ):
        self.clock = Clock()
        self.wamp = Wamp()
        self.hub = SubscriptionHub(
            self.wamp,  # type: ignore[arg-type]
            self.clock,
            history_size=100,
            sse_linger=sse_linger,
            router_wait=60,
            prepare=EncodedHit,
        )
        self.stats = Stats()
        self.compiled: list[tuple[str, ...]] = []

        def compile_projection(fields: tuple[str, ...]) -> Any:
            self.compiled.append(fields)

            def project(source: dict[str, Any]) -> dict[str, Any]:
                if projections is not None:
                    projections.append(source)
                return {k: v for k, v in source.items() if k in fields}

            return project

        self.views = Views(self.hub, max_held_bytes, self.stats, compile_projection)

    def join(self, tail: Tail, shape: ViewShape, history: bool = False):
        view = self.views.enter(SID, shape, tail)
        d = view.when_joined()
        assert d.called, "the session answers at once"
        return view, view.receive(tail, history)

    def publish(self, *sources: dict[str, Any], **extra: Any) -> None:
        session = self.wamp.session
        assert session is not None
        session.publish(*[{"_index": "logs", "_source": s, **extra} for s in sources])


DELAY = ViewShape(None, 2.0, "@timestamp")
FIELDS = ViewShape(("a",), 0.0, "@timestamp")


def ts(second: int) -> str:
    return f"2024-01-01T00:00:{second:02d}Z"


def test_tails_of_one_shape_share_one_view_and_each_hit_is_cut_and_encoded_once():
    cut: list[Any] = []
    s = Setup(projections=cut)
    one, two, other = Tail(), Tail(), Tail()
    view, _ = s.join(one, FIELDS)
    again, _ = s.join(two, FIELDS)
    assert again is view
    s.join(other, DELAY)
    assert len(s.views) == 2
    assert s.compiled == [("a",)]
    assert len(s.hub.get(SID).listeners) == 2  # one per view, however many tails
    s.publish({"a": 1, "b": 2}, _id="x")
    assert len(cut) == 1
    assert one.got[0].hit is two.got[0].hit  # the same encoded hit for both
    assert json.loads(hit_json(one.got[0].hit)) == {"_index": "logs", "_source": {"a": 1}, "_id": "x"}


def test_a_delay_releases_in_timestamp_order_when_time_is_up_and_marks_late_ones():
    s = Setup()
    tail = Tail()
    s.join(tail, DELAY)
    s.publish({"@timestamp": ts(3), "n": 3}, {"@timestamp": ts(1), "n": 1})
    s.clock.advance(0.5)
    s.publish({"@timestamp": ts(2), "n": 2})
    assert tail.got == []
    s.clock.advance(1.5)  # the first two are due; 2 goes with them, being smaller than 3
    assert [src["n"] for src in tail.sources()] == [1, 2, 3]
    assert [seq for seq, _ in tail.got] == [1, 2, 3]  # numbered by the view, as released
    s.publish({"@timestamp": ts(0), "n": 0})  # older than one released: at once, marked late
    assert tail.got[-1].hit["_late"] is True
    assert json.loads(hit_json(tail.got[-1].hit))["_late"] is True
    assert "_late" not in tail.got[0].hit
    assert s.stats.lates == 1
    assert s.views.held == 0


def test_fields_that_leave_out_the_order_field_still_order_by_it():
    s = Setup()
    tail = Tail()
    s.join(tail, ViewShape(("n",), 2.0, "@timestamp"))
    s.publish({"@timestamp": ts(3), "n": 3}, {"@timestamp": ts(1), "n": 1}, {"@timestamp": ts(2), "n": 2})
    s.clock.advance(2.0)
    assert tail.sources() == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_hits_without_the_field_are_released_when_their_time_is_up():
    s = Setup()
    tail = Tail()
    s.join(tail, DELAY)
    s.publish({"n": "none"})
    s.clock.advance(1.9)
    assert tail.got == []
    s.clock.advance(0.1)
    assert tail.sources() == [{"n": "none"}]


def test_over_the_bound_a_view_releases_early_in_order_and_counts_it():
    s = Setup(max_held_bytes=250)  # two of these hits (120 bytes each), not three
    tail = Tail()
    s.join(tail, DELAY)
    s.publish({"@timestamp": ts(9), "pad": "x" * 40})
    s.publish({"@timestamp": ts(5), "pad": "x" * 40})
    assert tail.got == []
    s.publish({"@timestamp": ts(7), "pad": "x" * 40})
    assert [src["@timestamp"] for src in tail.sources()] == [ts(5)]
    assert s.stats.earlies == 1
    assert 0 < s.views.held_bytes <= 250
    s.clock.advance(2)
    assert [src["@timestamp"] for src in tail.sources()] == [ts(5), ts(7), ts(9)]


def test_the_last_tail_out_drops_the_view_and_the_subscription():
    s = Setup()
    one, two = Tail(), Tail()
    s.join(one, DELAY)
    s.join(two, DELAY)
    s.publish({"@timestamp": ts(1)})
    s.views.leave(SID, DELAY, one)
    assert len(s.views) == 1
    s.views.leave(SID, DELAY, two)
    assert len(s.views) == 0
    assert len(s.hub) == 0
    assert s.clock.getDelayedCalls() == []  # the held hit's timer went with it


def test_a_view_lingers_after_its_last_sse_tail_and_resumes_it_from_its_history():
    s = Setup(sse_linger=30.0)
    first = Tail()
    _, feed = s.join(first, DELAY, history=True)
    s.publish({"@timestamp": ts(1), "n": 1})
    s.clock.advance(2)
    last_id = feed.event_id(first.got[-1].seq)
    s.views.leave(SID, DELAY, first, linger=True)
    s.publish({"@timestamp": ts(2), "n": 2}, {"@timestamp": ts(3), "n": 3})  # while it is away
    s.clock.advance(10)
    assert len(s.views) == 1
    again = Tail()
    _, feed_again = s.join(again, DELAY, history=True)
    assert feed_again is feed
    resume = feed.resume(last_id)
    assert resume.gap is None
    assert [e.hit["_source"]["n"] for e in resume.replay] == [2, 3]
    s.views.leave(SID, DELAY, again, linger=True)
    s.clock.advance(30)
    assert len(s.views) == 0
    assert len(s.hub) == 0


def test_a_router_loss_releases_held_hits_ends_tails_that_cannot_wait_then_a_gap_follows():
    s = Setup()
    json_tail, sse_tail = Tail(bridges_gaps=False), Tail()
    _, feed = s.join(json_tail, DELAY)
    s.join(sse_tail, DELAY)
    s.publish({"@timestamp": ts(2), "n": 2}, {"@timestamp": ts(1), "n": 1})
    epoch = feed.epoch
    s.hub.router_lost("connection to the router lost")
    # What the view held goes at the loss, in order: the JSON tail ends with it, the other has it
    # before the notice.
    assert (
        json_tail.sources()
        == sse_tail.sources()
        == [{"@timestamp": ts(1), "n": 1}, {"@timestamp": ts(2), "n": 2}]
    )
    assert json_tail.failed == ["router_unavailable"]
    assert sse_tail.failed == []
    assert s.views.held == 0
    s.clock.advance(0.5)
    session = Session()
    s.wamp.session = session
    for callback in s.wamp.joined:
        callback(session)
    assert sse_tail.gaps[0]["last_event_id"] == f"{epoch}:2"  # the view's last id, not the sid's
    assert len(sse_tail.gaps) == 1
    assert feed.epoch != epoch
    assert feed.resume(f"{epoch}:2").gap is not None  # old ids resume only with a gap notice


def test_a_refused_subscription_fails_the_joining_tail_and_forgets_the_view():
    s = Setup()
    session = s.wamp.session
    assert session is not None
    session.hold = []
    tail = Tail()
    view = s.views.enter(SID, DELAY, tail)
    d = view.when_joined()
    session.hold.pop().errback(RuntimeError("not authorized"))
    failures: list[Any] = []
    d.addErrback(failures.append)
    assert len(failures) == 1
    assert "not authorized" in failures[0].getErrorMessage()
    assert len(s.views) == 0


def test_no_router_session_is_a_retry_later_before_any_view_is_made():
    s = Setup()
    s.wamp.session = None
    with pytest.raises(RouterUnavailable):  # a RetryLater: 503, as a direct join would be
        s.views.enter(SID, DELAY, Tail())
    assert len(s.views) == 0


def test_joined_later_a_tail_gets_what_the_view_still_holds():
    s = Setup()
    early, late = Tail(), Tail()
    s.join(early, DELAY)
    s.publish({"@timestamp": ts(1), "n": 1})
    s.clock.advance(1)
    s.join(late, DELAY)
    s.clock.advance(1)
    assert early.sources() == late.sources() == [{"@timestamp": ts(1), "n": 1}]
