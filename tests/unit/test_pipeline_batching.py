"""When the ingest pipeline closes a batch: at the end of a turn, full, or after the linger.

Documents of one index gather while a partial batch of theirs is at the
engine, so that a busy index sends fewer, fuller batches; an idle one never
waits.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from beater.ingest.pipeline import IngestPipeline
from common.engine import EngineUnavailable
from tests.unit.pipeline_doubles import Engine, Router, docs, make, result


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


def test_indices_are_batched_separately() -> None:
    clock, engine, router = Clock(), Engine(), Router()
    p = make(engine, router, clock)
    p.submit("a", docs({"hit": 1}), [])
    p.submit("b", docs({"hit": 1}), [])
    clock.advance(0.005)
    assert len(engine.calls) == 2
    assert {hits[0]["_index"] for _, hits in router.events} == {"a", "b"}
