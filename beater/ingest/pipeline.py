"""ingest → percolate → publish, batched per index.

Documents that arrive close together are percolated together, and how many
travel together follows the load. A partial batch goes at the end of the
reactor turn (requests that arrived in the same turn share it) unless its
index already has a partial batch at the engine. Then the documents gather
until one of those comes back or ``linger`` seconds pass, whichever comes
first, and go together, up to ``batch_size``. This is TCP's Nagle rule with
a bound on the wait: a lone document waits for nothing; a stream
of them waits at most as long as the request in flight needs, and never more
than ``linger``, so a slow engine still sees a second request side by side.
A full batch goes at once, and so does the remainder of a large request.
Several batches may be at the engine at once (up to ``concurrency``), but
each index sends its batches' events strictly in arrival order, so
subscribers see hits in ingest order. A batch is sent as soon as the one
before it was *sent*, not acknowledged (one router session delivers in
order): router round trips overlap with engine work.

An ingest request is a ticket: it is answered once each of its documents was
percolated and its matches acknowledged by the router, or failed as soon as
one of its batches fails (the sender retries the whole request:
at-least-once).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from beater.matching.percolate import PercolateResult
from common.hits import Hit, make_hit, split_id

log = Logger()


class QueueFull(Exception):
    """More documents waiting than ``queue_max_docs`` (HTTP 429)."""


class RequestTooLarge(Exception):
    """One request holds more documents than the whole queue: retrying cannot help (HTTP 413)."""


class PercolateFn(Protocol):
    def __call__(self, index: str, docs: list[dict[str, Any]]) -> Awaitable[PercolateResult]: ...


#: Hands every event of a batch to the router before it returns; the Deferred
#: fires with the number of hit deliveries once the router acknowledged them all.
PublishFn = Callable[[dict[str, list[Hit]]], Deferred[int]]


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

    def settle(self, published: int = 0, error: Exception | None = None, count: int = 1) -> None:
        """``count`` documents are done; the first failure answers the request at once.

        The request's other batches still run to the end (their documents are
        already at the engine or the router; the sender retries the whole
        request anyway), but nobody waits for them.
        """
        self.published += published
        self.remaining -= count
        if error is not None and self.error is None:
            self.error = error
            self.done.errback(error)
            return
        if self.remaining == 0 and self.error is None:
            self.done.callback(IngestOutcome(self.accepted, self.published, self.rejected))


@dataclass(slots=True)
class _Item:
    position: int
    doc_id: Any
    source: dict[str, Any]
    ticket: _Ticket


@dataclass(eq=False)
class _Batch:
    """Documents percolated together; published once every earlier batch of its index was sent."""

    items: list[_Item]
    partial: bool = False
    grouped: dict[str, list[Hit]] = field(default_factory=dict)
    #: Matches per item (0 for an item the engine refused).
    matched: list[int] = field(default_factory=list)
    error: Exception | None = None
    ready: bool = False


@dataclass
class _Lane:
    """Per-index queue, linger timer and the batches not yet sent, in dispatch order."""

    index: str
    pending: list[_Item] = field(default_factory=list)
    timer: IDelayedCall | None = None
    #: Partial batches of this index at the engine: while there are any, the next one gathers.
    partials_out: int = 0
    unsent: deque[_Batch] = field(default_factory=deque)


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
        pending = lane.pending
        for position, doc in docs:
            if "_id" in doc:
                doc_id, source = split_id(doc)
                pending.append(_Item(position, doc_id, source, ticket))
            else:
                pending.append(_Item(position, None, doc, ticket))
        self.queued += len(docs)
        while len(lane.pending) >= self.batch_size:
            self._dispatch(lane)
        if lane.pending and lane.timer is None:
            # Not inside submit: requests arriving in this reactor turn still share the batch.
            wait = self.linger if lane.partials_out else 0.0
            lane.timer = self._clock.callLater(wait, self._linger_expired, lane)
        return ticket.done

    def _linger_expired(self, lane: _Lane) -> None:
        lane.timer = None
        if lane.pending:
            self._dispatch(lane)

    def _dispatch(self, lane: _Lane) -> None:
        batch = _Batch(lane.pending[: self.batch_size], partial=len(lane.pending) < self.batch_size)
        del lane.pending[: self.batch_size]
        if not lane.pending and lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        if batch.partial:
            lane.partials_out += 1
        lane.unsent.append(batch)
        ensureDeferred(self._run_percolate(lane, batch))

    async def _run_percolate(self, lane: _Lane, batch: _Batch) -> None:
        try:

            async def percolated() -> PercolateResult:
                return await self._percolate(lane.index, [i.source for i in batch.items])

            result: PercolateResult = await self._sem.run(percolated)
            # _index: the concrete index (an alias or data stream name resolved, beater/matching/percolate.py).
            batch.matched, batch.grouped = self._group(result.index or lane.index, batch.items, result)
        except Exception as exc:
            batch.error = exc
        batch.ready = True
        if batch.partial:
            # What gathered behind it goes at the end of this turn, without waiting out the linger.
            lane.partials_out -= 1
            if lane.pending:
                if lane.timer is not None:
                    lane.timer.cancel()
                lane.timer = self._clock.callLater(0.0, self._linger_expired, lane)
        self._send_ready(lane)

    def _group(
        self, index: str, items: list[_Item], result: PercolateResult
    ) -> tuple[list[int], dict[str, list[Hit]]]:
        """Matches per item and ``{sid: [hits in ingest order]}``; a hit is made only for a matching item.

        An item the engine refused is rejected from its request (0 matches).
        """
        errors = result.errors
        matched: list[int] = []
        grouped: dict[str, list[Hit]] = {}
        for n, (item, sids) in enumerate(zip(items, result.matches, strict=True)):
            if errors and n in errors:
                item.ticket.accepted -= 1
                item.ticket.rejected.append(
                    {"position": item.position, "reason": f"engine refused the document: {errors[n]}"}
                )
                self.stats["engine_rejected"] += 1
                matched.append(0)
                continue
            matched.append(len(sids))
            if sids:
                hit = make_hit(index, item.source, item.doc_id)
                for sid in sids:
                    grouped.setdefault(sid, []).append(hit)
        return matched, grouped

    def _send_ready(self, lane: _Lane) -> None:
        """Send the batches at the head of the lane that are percolated, in dispatch order.

        A batch is sent as soon as every earlier one was *sent* (one router
        session delivers in order), not acknowledged: engine work and router
        round trips overlap. Each batch still answers only on its own acks.
        """
        while lane.unsent and lane.unsent[0].ready:
            batch = lane.unsent.popleft()
            if batch.error is not None:
                self._settle(batch, error=batch.error)
                continue
            try:
                acked = self._publish(batch.grouped)
            except Exception as exc:
                self._settle(batch, error=exc)
                continue
            acked.addCallbacks(
                lambda published, batch=batch: self._settle(batch, published=published),
                lambda failure, batch=batch: self._settle(batch, error=failure.value),
            )

    def _settle(self, batch: _Batch, published: int = 0, error: Exception | None = None) -> None:
        self.queued -= len(batch.items)
        if error is not None:
            log.debug("batch.failed", size=len(batch.items), error=str(error))
            for item in batch.items:
                item.ticket.settle(error=error)
            return
        self.stats["batches"] += 1
        self.stats["documents"] += len(batch.items)
        self.stats["published"] += published
        # Per request, not per document: a batch's items belong to one or a few requests,
        # in order, and a request is answered once its last document is settled.
        done: dict[int, list[Any]] = {}
        for item, matched in zip(batch.items, batch.matched, strict=True):
            seen = done.get(id(item.ticket))
            if seen is None:
                done[id(item.ticket)] = [item.ticket, 1, matched]
            else:
                seen[1] += 1
                seen[2] += matched
        for ticket, count, matched in done.values():
            ticket.settle(published=matched, count=count)
