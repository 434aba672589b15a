"""Coalescer: callers share engine requests, and each is served by one that started after it asked."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from beater.store.coalesce import Coalescer
from common.engine import EngineRejected, EngineUnavailable


class Engine:
    """A bulk request that completes when the test says."""

    def __init__(self) -> None:
        self.requests: list[tuple[list[int], Deferred[None]]] = []

    async def flush(self, items: list[int]) -> list[int | Exception]:
        d: Deferred[None] = Deferred()
        self.requests.append((items, d))
        await d
        return [EngineRejected(400, "odd") if i % 2 else i * 10 for i in items]


def fired(d: Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_first_caller_is_served_at_once() -> None:
    engine = Engine()
    c = Coalescer(engine.flush)
    done = fired(c.submit(2))
    assert [items for items, _ in engine.requests] == [[2]]
    assert done == []
    engine.requests[0][1].callback(None)
    assert done == [20]


def test_callers_during_a_flush_share_the_next_one() -> None:
    engine = Engine()
    c = Coalescer(engine.flush)
    first = fired(c.submit(0))
    later = [fired(c.submit(i)) for i in range(2, 102, 2)]
    assert len(engine.requests) == 1  # they asked after it started...
    engine.requests[0][1].callback(None)
    assert first == [0]
    assert all(d == [] for d in later)  # ...so the next one serves them
    assert [items for items, _ in engine.requests][1] == list(range(2, 102, 2))
    engine.requests[1][1].callback(None)
    assert [d[0] for d in later] == [i * 10 for i in range(2, 102, 2)]
    assert len(engine.requests) == 2


def test_an_item_refused_fails_alone() -> None:
    engine = Engine()
    c = Coalescer(engine.flush)
    c.submit(0)
    good, bad = fired(c.submit(2)), fired(c.submit(3))
    engine.requests[0][1].callback(None)
    engine.requests[1][1].callback(None)
    assert good == [20]
    assert bad[0].check(EngineRejected)


def test_failed_flush_fails_its_callers_and_the_next_round_still_runs() -> None:
    engine = Engine()
    c = Coalescer(engine.flush)
    first = fired(c.submit(0))
    second = fired(c.submit(2))
    engine.requests[0][1].errback(EngineUnavailable("down"))
    assert first[0].check(EngineUnavailable)
    assert second == []
    engine.requests[1][1].callback(None)
    assert second == [20]
    third = fired(c.submit(4))
    assert len(engine.requests) == 3  # idle again: a new caller starts one at once
    engine.requests[2][1].callback(None)
    assert third == [40]


def test_flush_raising_at_once_fails_the_caller() -> None:
    async def broken(items: list[int]) -> list[int | Exception]:
        raise EngineUnavailable("down")

    c: Coalescer[int, int] = Coalescer(broken)
    with pytest.raises(EngineUnavailable):
        fired(c.submit(1))[0].raiseException()
