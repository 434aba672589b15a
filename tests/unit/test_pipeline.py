"""Batching and ordering of the ingest pipeline, on a fake clock.

The percolate and publish steps are plain in-memory functions here (the real
ones run against the engine and router in tests/integration); what is under
test is when batches close, what they contain and in what order they publish.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from beater.ingest.pipeline import IngestOutcome, IngestPipeline, QueueFull, RequestTooLarge
from beater.matching.percolate import PercolateResult
from beater.publishing.publisher import PublishFailed, group_by_sid
from common.engine import EngineUnavailable
from common.wamp import RouterUnavailable


class Engine:
    """Percolates by a predicate; each call can be held until released."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.hold = hold
        self.pending: list[tuple[Deferred[None], list[dict[str, Any]]]] = []
        self.fail_next: Exception | None = None

    async def percolate(self, index: str, docs: list[dict[str, Any]]) -> PercolateResult:
        self.calls.append(docs)
        if self.hold:
            gate: Deferred[None] = Deferred()
            self.pending.append((gate, docs))
            await gate
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        errors = {i: "bad" for i, d in enumerate(docs) if d.get("bad")}
        return PercolateResult(matches=[["s1"] if d.get("hit") else [] for d in docs], errors=errors)


class Router:
    """Takes events at once; acknowledges at once, or when the test says (``hold``)."""

    def __init__(self, hold: bool = False) -> None:
        self.events: list[tuple[str, list[Any]]] = []
        self.hold = hold
        self.acks: list[Deferred[int]] = []
        self.refuse_next: Exception | None = None

    def publish(self, grouped: dict[str, list[Any]]) -> Deferred[int]:
        if self.refuse_next is not None:
            exc, self.refuse_next = self.refuse_next, None
            raise exc
        for sid, hits in grouped.items():
            self.events.append((sid, hits))
        published = sum(len(h) for h in grouped.values())
        if not self.hold:
            return succeed(published)
        ack: Deferred[int] = Deferred()
        self.acks.append(ack)
        return ack.addCallback(lambda _: published)

    def sent(self) -> list[int]:
        return [h["_source"]["n"] for _, hits in self.events for h in hits]


def make(engine: Engine, router: Router, clock: Clock, **kw: Any) -> IngestPipeline:
    opts: dict[str, Any] = {"batch_size": 3, "linger": 0.005, "max_queued": 100, "concurrency": 2}
    opts.update(kw)
    return IngestPipeline(engine.percolate, router.publish, clock=clock, **opts)


def result(d: Deferred[IngestOutcome]) -> IngestOutcome:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "not fired yet"
    if isinstance(out[0], Exception) or hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def docs(*items: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return list(enumerate(items))


def test_a_lone_document_never_waits_for_the_linger() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock, linger=60.0)
    d = p.submit("i", docs({"hit": 1, "n": 1}), [])
    clock.advance(0)
    assert len(engine.calls) == 1
    assert result(d).as_json() == {"accepted": 1, "published": 1, "rejected": []}


def test_requests_arriving_together_share_a_batch() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    d1 = p.submit("i", docs({"hit": 1, "n": 1}), [])
    d2 = p.submit("i", docs({"hit": 1, "n": 2}), [])
    clock.advance(0)
    assert [len(c) for c in engine.calls] == [2]
    assert router.events == [
        (
            "s1",
            [{"_index": "i", "_source": {"hit": 1, "n": 1}}, {"_index": "i", "_source": {"hit": 1, "n": 2}}],
        )
    ]
    assert result(d1).published == 1
    assert result(d2).published == 1


def test_a_lone_document_on_an_idle_index_goes_at_the_end_of_the_turn() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    d = p.submit("i", docs({"hit": 1, "n": 1}), [])
    assert engine.calls == []  # not inside submit: a request arriving in the same turn joins it
    clock.advance(0)
    assert engine.calls == [[{"hit": 1, "n": 1}]]
    assert result(d).published == 1


def one_out_one_gathering() -> tuple[Clock, Engine, Router, IngestPipeline, Deferred[Any], Deferred[Any]]:
    """Document 1 at the (held) engine as a partial batch, document 2 submitted behind it."""
    clock, engine, router = Clock(), Engine(hold=True), Router()
    p = make(engine, router, clock)
    d1 = p.submit("i", docs({"hit": 1, "n": 1}), [])
    clock.advance(0)
    d2 = p.submit("i", docs({"hit": 1, "n": 2}), [])
    clock.advance(0)
    return clock, engine, router, p, d1, d2


def test_documents_gather_while_their_index_has_a_partial_batch_at_the_engine() -> None:
    clock, engine, router, p, d1, d2 = one_out_one_gathering()
    d3 = p.submit("i", docs({"hit": 1, "n": 3}), [])
    clock.advance(0.004)
    assert len(engine.calls) == 1  # they wait for the batch at the engine...
    engine.pending[0][0].callback(None)
    assert result(d1).published == 1
    clock.advance(0)  # ...and go together as soon as it is back, not when the linger ends
    assert [[d["n"] for d in c] for c in engine.calls] == [[1], [2, 3]]
    engine.pending[1][0].callback(None)
    assert router.sent() == [1, 2, 3]
    assert result(d2).published == 1
    assert result(d3).published == 1
    assert p.queued == 0


def test_gathered_documents_go_after_the_linger_beside_a_slow_batch() -> None:
    clock, engine, router, p, _d1, _d2 = one_out_one_gathering()
    p.submit("i", docs({"hit": 1, "n": 3}), [])
    clock.advance(0.005)
    assert [[d["n"] for d in c] for c in engine.calls] == [[1], [2, 3]]  # the first is still out
    p.submit("i", docs({"hit": 1, "n": 4}), [])
    clock.advance(0.004)
    assert len(engine.calls) == 2  # two partial batches out: the next gathers again
    engine.pending[1][0].callback(None)  # either one coming back lets it go
    clock.advance(0)
    assert [[d["n"] for d in c] for c in engine.calls][2] == [4]
    engine.pending[0][0].callback(None)
    engine.pending[2][0].callback(None)
    assert router.sent() == [1, 2, 3, 4]  # published in arrival order all the same
    assert p.queued == 0


def test_with_no_linger_documents_never_gather() -> None:
    clock, engine, router = Clock(), Engine(hold=True), Router()
    p = make(engine, router, clock, linger=0.0)
    for n in (1, 2, 3):
        p.submit("i", docs({"hit": 1, "n": n}), [])
        clock.advance(0)
    assert [[d["n"] for d in c] for c in engine.calls] == [[1], [2]]  # the third queues for a slot
    engine.pending[0][0].callback(None)
    assert [[d["n"] for d in c] for c in engine.calls][2] == [3]


def test_gathered_documents_fill_full_batches_at_once_and_the_rest_waits() -> None:
    clock, engine, router = Clock(), Engine(hold=True), Router()
    p = make(engine, router, clock)  # batches of 3
    p.submit("i", docs({"hit": 1, "n": 0}), [])
    clock.advance(0)
    for n in range(1, 5):
        p.submit("i", docs({"hit": 1, "n": n}), [])
    clock.advance(0)
    assert [[d["n"] for d in c] for c in engine.calls] == [[0], [1, 2, 3]]  # a full batch never waits
    engine.pending[0][0].callback(None)
    clock.advance(0)
    assert [[d["n"] for d in c] for c in engine.calls][2] == [4]


def test_the_remainder_of_a_large_request_goes_beside_its_full_batches() -> None:
    clock, engine, router = Clock(), Engine(hold=True), Router()
    p = make(engine, router, clock, concurrency=4)
    p.submit("i", docs(*({"hit": 1, "n": n} for n in range(7))), [])
    clock.advance(0)
    assert [len(c) for c in engine.calls] == [3, 3, 1]  # only a partial batch holds the next back


def test_another_index_does_not_wait_for_this_ones_partial_batch() -> None:
    clock, engine, router = Clock(), Engine(hold=True), Router()
    p = make(engine, router, clock)
    p.submit("i", docs({"hit": 1, "n": 1}), [])
    clock.advance(0)
    p.submit("j", docs({"hit": 1, "n": 2}), [])
    clock.advance(0)
    assert [[d["n"] for d in c] for c in engine.calls] == [[1], [2]]


def test_a_failed_partial_batch_lets_the_documents_gathered_behind_it_go() -> None:
    clock, engine, _router, _p, d1, d2 = one_out_one_gathering()
    assert len(engine.calls) == 1
    engine.fail_next = EngineUnavailable("down")
    engine.pending[0][0].callback(None)
    with pytest.raises(EngineUnavailable):
        result(d1)
    clock.advance(0)
    assert len(engine.calls) == 2
    engine.pending[1][0].callback(None)
    assert result(d2).published == 1


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


def test_indices_are_batched_separately() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    p.submit("a", docs({"hit": 1}), [])
    p.submit("b", docs({"hit": 1}), [])
    clock.advance(0.005)
    assert len(engine.calls) == 2
    assert {hits[0]["_index"] for _, hits in router.events} == {"a", "b"}


def test_id_is_split_from_source() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    p.submit("i", docs({"_id": "x1", "hit": 1}), [])
    clock.advance(0.005)
    assert engine.calls == [[{"hit": 1}]]
    assert router.events == [("s1", [{"_index": "i", "_id": "x1", "_source": {"hit": 1}}])]


def test_engine_refused_documents_are_rejected_alone() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    d = p.submit(
        "i", [(0, {"hit": 1}), (2, {"hit": 1, "bad": 1}), (3, {"hit": 1})], [{"position": 1, "reason": "x"}]
    )
    out = result(d)
    assert out.accepted == 2
    assert out.published == 2
    assert [r["position"] for r in out.as_json()["rejected"]] == [1, 2]


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


def test_queue_bound() -> None:
    clock, engine, router = Clock(), Engine(hold=True), Router()
    p = make(engine, router, clock, max_queued=4)
    p.submit("i", docs({"n": 1}, {"n": 2}, {"n": 3}), [])
    with pytest.raises(QueueFull):
        p.submit("i", docs({"n": 4}, {"n": 5}), [])
    assert p.queued == 3


def test_request_larger_than_the_queue_is_refused_for_good() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock, max_queued=4)
    with pytest.raises(RequestTooLarge):
        p.submit("i", docs(*({"n": n} for n in range(5))), [])
    assert p.queued == 0


def test_request_without_documents_answers_at_once() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    assert result(p.submit("i", [], [])).as_json() == {"accepted": 0, "published": 0, "rejected": []}


def test_group_by_sid_keeps_ingest_order() -> None:
    grouped = group_by_sid(["h0", "h1", "h2"], [["a", "b"], [], ["b"]])
    assert grouped == {"a": ["h0"], "b": ["h0", "h2"]}


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
