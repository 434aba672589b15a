"""ingest → percolate → publish, batched per index.

Documents that arrive close together are percolated together: a batch closes
when it holds ``batch_size`` documents or ``linger`` seconds after its first
document, whichever comes first, so throughput does not collapse into one
engine round trip per document. Several batches may be at the engine at
once, but each index publishes its batches strictly in arrival order, so
subscribers see hits in ingest order.

An ingest request is a ticket: it is answered once each of its documents was
percolated and its matches acknowledged by the router, or failed as soon as
one of its batches fails (the sender retries the whole request:
at-least-once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from beater.percolate import PercolateResult
from beater.publish import group_by_sid
from common.hits import Hit, make_hit, split_id

log = Logger()


class QueueFull(Exception):
    """More documents waiting than ``queue_max_docs`` (HTTP 429)."""


class RequestTooLarge(Exception):
    """One request holds more documents than the whole queue: retrying cannot help (HTTP 413)."""


class PercolateFn(Protocol):
    def __call__(self, index: str, docs: list[dict[str, Any]]) -> Awaitable[PercolateResult]: ...


PublishFn = Callable[[dict[str, list[Hit]]], Awaitable[int]]


@dataclass
class IngestOutcome:
    accepted: int
    published: int
    rejected: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "published": self.published,
            "rejected": sorted(self.rejected, key=lambda r: r["position"]),
        }


@dataclass
class _Ticket:
    """The state of one ingest request across the batches its documents land in."""

    remaining: int
    accepted: int
    rejected: list[dict[str, Any]]
    published: int = 0
    error: Exception | None = None
    done: Deferred[IngestOutcome] = field(default_factory=Deferred)

    def settle(self, published: int = 0, error: Exception | None = None) -> None:
        self.published += published
        if error is not None and self.error is None:
            self.error = error
        self.remaining -= 1
        if self.remaining == 0:
            if self.error is not None:
                self.done.errback(self.error)
            else:
                self.done.callback(IngestOutcome(self.accepted, self.published, self.rejected))


@dataclass
class _Item:
    position: int
    doc_id: Any
    source: dict[str, Any]
    ticket: _Ticket


@dataclass
class _Lane:
    """Per-index queue, linger timer and the tail of the publish-order chain."""

    index: str
    pending: list[_Item] = field(default_factory=list)
    timer: IDelayedCall | None = None
    tail: Deferred[None] | None = None


class IngestPipeline:
    """Batches documents per index, percolates them and publishes their matches."""

    def __init__(
        self,
        percolate: PercolateFn,
        publish: PublishFn,
        *,
        clock: IReactorTime,
        batch_size: int,
        linger: float,
        max_queued: int,
        concurrency: int,
    ) -> None:
        self._percolate = percolate
        self._publish = publish
        self._clock = clock
        self.batch_size = batch_size
        self.linger = linger
        self.max_queued = max_queued
        self._sem = DeferredSemaphore(concurrency)
        self._lanes: dict[str, _Lane] = {}
        self.queued = 0
        self.stats = {"batches": 0, "documents": 0, "published": 0, "engine_rejected": 0}

    def submit(
        self, index: str, docs: list[tuple[int, dict[str, Any]]], rejected: list[dict[str, Any]]
    ) -> Deferred[IngestOutcome]:
        """Queue one request's documents; the Deferred fires when all are published."""
        if len(docs) > self.max_queued:
            raise RequestTooLarge(
                f"{len(docs)} documents in one request, more than the queue holds ({self.max_queued}): "
                "send smaller batches"
            )
        if self.queued + len(docs) > self.max_queued:
            raise QueueFull(f"{self.queued} documents waiting, limit {self.max_queued}")
        ticket = _Ticket(remaining=len(docs), accepted=len(docs), rejected=list(rejected))
        if not docs:
            ticket.remaining = 1
            ticket.settle()
            return ticket.done
        lane = self._lanes.get(index)
        if lane is None:
            lane = self._lanes[index] = _Lane(index)
        for position, doc in docs:
            doc_id, source = split_id(doc)
            lane.pending.append(_Item(position, doc_id, source, ticket))
        self.queued += len(docs)
        while len(lane.pending) >= self.batch_size:
            self._dispatch(lane)
        if lane.pending and lane.timer is None:
            lane.timer = self._clock.callLater(self.linger, self._linger_expired, lane)
        return ticket.done

    def _linger_expired(self, lane: _Lane) -> None:
        lane.timer = None
        while lane.pending:
            self._dispatch(lane)

    def _dispatch(self, lane: _Lane) -> None:
        batch = lane.pending[: self.batch_size]
        del lane.pending[: self.batch_size]
        if not lane.pending and lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        previous = lane.tail
        done: Deferred[None] = ensureDeferred(self._process(lane.index, batch, previous))
        lane.tail = done

    async def _process(self, index: str, batch: list[_Item], previous: Deferred[None] | None) -> None:
        try:
            try:
                result: PercolateResult = await self._sem.run(
                    lambda: ensureDeferred(self._percolate(index, [i.source for i in batch]))
                )
                hits: list[Hit] = []
                matches: list[list[str]] = []
                for n, item in enumerate(batch):
                    reason = result.errors.get(n)
                    if reason is not None:
                        item.ticket.accepted -= 1
                        item.ticket.rejected.append(
                            {"position": item.position, "reason": f"engine refused the document: {reason}"}
                        )
                        self.stats["engine_rejected"] += 1
                        continue
                    hits.append(make_hit(index, item.source, item.doc_id))
                    matches.append(result.matches[n])
                grouped = group_by_sid(hits, matches)
            finally:
                # Publish strictly after the previous batch of this index, even if it failed.
                if previous is not None:
                    await previous
            published = await self._publish(grouped)
        except Exception as exc:
            log.debug("batch.failed", index=index, size=len(batch), error=str(exc))
            for item in batch:
                item.ticket.settle(error=exc)
        else:
            self.stats["batches"] += 1
            self.stats["documents"] += len(batch)
            self.stats["published"] += published
            per_item = {id(i): 0 for i in batch}
            ok_items = [i for n, i in enumerate(batch) if n not in result.errors]
            for item, sids in zip(ok_items, matches, strict=True):
                per_item[id(item)] = len(sids)
            for item in batch:
                item.ticket.settle(published=per_item[id(item)])
        finally:
            self.queued -= len(batch)
