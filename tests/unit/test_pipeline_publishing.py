"""The ingest pipeline's publishing: arrival order, acknowledgements, and which requests a failure fails.

Batches percolate concurrently but publish in the order they arrived; a
request answers when its own batches are acknowledged, and fails with the
first of them that fails, without holding back anyone else's.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from beater.publishing.publisher import PublishFailed, group_by_sid
from common.engine import EngineUnavailable
from common.wamp import RouterUnavailable
from tests.unit.pipeline_doubles import Engine, Router, docs, make, result


def test_batches_publish_in_arrival_order_even_if_percolated_out_of_order() -> None:
    clock, engine, router = Clock(), Engine(hold=True), Router()
    p = make(engine, router, clock)
    d = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(6))), [])
    (first, _), (second, _) = engine.pending
    second.callback(None)  # the later batch comes back first...
    assert router.events == []  # ...but waits for the earlier one
    first.callback(None)
    assert [h["_source"]["n"] for _, hits in router.events for h in hits] == list(range(6))
    assert result(d).published == 6


def test_group_by_sid_keeps_ingest_order() -> None:
    grouped = group_by_sid(["h0", "h1", "h2"], [["a", "b"], [], ["b"]])
    assert grouped == {"a": ["h0"], "b": ["h0", "h2"]}


def test_next_batch_is_sent_before_the_previous_is_acknowledged() -> None:
    clock, engine, router = Clock(), Engine(), Router(hold=True)
    p = make(engine, router, clock)
    d1 = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(3))), [])
    d2 = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(3, 6))), [])
    assert router.sent() == list(range(6))  # both batches sent, in order, no ack yet
    assert not d1.called
    assert not d2.called
    router.acks[1].callback(None)  # each request answers on its own batch's acks
    assert result(d2).published == 3
    assert not d1.called
    router.acks[0].callback(None)
    assert result(d1).published == 3
    assert p.queued == 0


def test_request_spanning_batches_answers_after_the_last_ack() -> None:
    clock, engine, router = Clock(), Engine(), Router(hold=True)
    p = make(engine, router, clock)
    d = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(6))), [])
    router.acks[0].callback(None)
    assert not d.called
    router.acks[1].callback(None)
    assert result(d).published == 6


def test_unacknowledged_publish_fails_only_the_requests_of_its_batch() -> None:
    clock, engine, router = Clock(), Engine(), Router(hold=True)
    p = make(engine, router, clock)
    d1 = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(3))), [])
    d2 = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(3, 6))), [])
    router.acks[0].errback(PublishFailed("no ack"))
    with pytest.raises(PublishFailed):
        result(d1)
    router.acks[1].callback(None)
    assert result(d2).published == 3
    assert p.queued == 0


def test_request_fails_when_any_of_its_batches_is_not_acknowledged() -> None:
    clock, engine, router = Clock(), Engine(), Router(hold=True)
    p = make(engine, router, clock)
    d = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(6))), [])
    router.acks[0].callback(None)
    router.acks[1].errback(PublishFailed("no ack"))
    with pytest.raises(PublishFailed):
        result(d)
    assert p.queued == 0


def test_request_fails_as_soon_as_one_of_its_batches_fails() -> None:
    # The sender's answer (503: retry) comes with the first failure, not after
    # the request's other batches are acknowledged.
    clock, engine, router = Clock(), Engine(), Router(hold=True)
    p = make(engine, router, clock)
    d = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(9))), [])
    router.acks[1].errback(PublishFailed("no ack"))
    with pytest.raises(PublishFailed):
        result(d)  # batches 0 and 2 still wait for their acks
    router.acks[0].callback(None)
    router.acks[2].callback(None)
    assert p.queued == 0
    assert router.sent() == list(range(9))


def test_first_failure_of_a_request_is_the_one_reported() -> None:
    clock, engine, router = Clock(), Engine(), Router(hold=True)
    p = make(engine, router, clock)
    d = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(6))), [])
    router.acks[1].errback(PublishFailed("first"))
    router.acks[0].errback(RouterUnavailable("second"))
    with pytest.raises(PublishFailed, match="first"):
        result(d)
    assert p.queued == 0


def test_publish_refused_at_send_fails_its_batch_and_later_batches_still_go() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    router.refuse_next = RouterUnavailable("not connected")
    d1 = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(3))), [])
    d2 = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(3, 6))), [])
    with pytest.raises(RouterUnavailable):
        result(d1)
    assert result(d2).published == 3
    assert router.sent() == [3, 4, 5]
    assert p.queued == 0


def test_failed_percolation_does_not_hold_back_later_batches() -> None:
    clock, engine, router = Clock(), Engine(hold=True), Router()
    p = make(engine, router, clock)
    d1 = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(3))), [])
    d2 = p.submit("i", docs(*({"hit": 1, "n": n} for n in range(3, 6))), [])
    (first, _), (second, _) = engine.pending
    second.callback(None)
    assert router.events == []  # waits for the earlier batch...
    engine.fail_next = EngineUnavailable("down")
    first.callback(None)  # ...which fails: the later one goes on
    with pytest.raises(EngineUnavailable):
        result(d1)
    assert result(d2).published == 3
    assert router.sent() == [3, 4, 5]


def test_failed_batch_fails_its_requests_and_frees_the_queue() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    engine.fail_next = EngineUnavailable("down")
    d = p.submit("i", docs({"hit": 1}), [])
    clock.advance(0.005)
    with pytest.raises(EngineUnavailable):
        result(d)
    assert p.queued == 0
    d2 = p.submit("i", docs({"hit": 1}), [])
    clock.advance(0.005)
    assert result(d2).published == 1
