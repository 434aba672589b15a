"""In-memory percolate and publish steps for the ingest pipeline's unit tests, on a fake clock.

The real steps run against the engine and router in tests/integration; these
stand in for them so that the tests see only when batches close, what they
contain and in what order they publish.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from beater.ingest.pipeline import IngestOutcome, IngestPipeline
from beater.matching.percolate import PercolateResult


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
