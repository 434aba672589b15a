"""What the ingest pipeline admits of a request and what it answers for its documents.

The queue's bound refuses a request that does not fit now (and one that never
will); a document's ``_id`` is kept out of what is percolated; documents the
engine refuses are rejected alone, beside those the body's reader refused.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from beater.ingest.pipeline import QueueFull, RequestTooLarge
from tests.unit.pipeline_doubles import Engine, Router, docs, make, result


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
