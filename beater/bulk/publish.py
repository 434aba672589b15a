"""The documents a bulk request stored, percolated and published; what could not be, counted by cause.

After the engine answers a bulk, its items are paired with the request's
actions (``items``): each stored document is published with the
``_index`` and ``_id`` the engine reported, as the engine stored it (read
back where an ingest pipeline ran, or where the answer does not hold it:
``stored_sources``). The shipper's answer waits for the documents to be
*queued* (the pipeline's bounded queue: back-pressure, and a bound on
memory), not for their publication: the engine's answer is what the
shipper needs, and a failed publish cannot be retried by the shipper
anyway (see ``api``).

Nothing stored goes unpublished silently: each document that cannot be
published is counted in ``bulk_documents_total{outcome="unpublished"}``
and ``bulk_unpublished_total{cause=...}``, the first time for each cause
logged as a warning (then counted only: a shipper resending all day must
not flood the log), and the request's answer says how many in
``X-Estrom-Unpublished`` (except publish failures after the answer: those
are counted and logged).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import IO, Any
from urllib.parse import parse_qsl

import ijson
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from beater.bulk.items import (
    StoredDocument,
    Unpaired,
    actions,
    response_items,
    stored_count,
    stored_documents,
)
from beater.bulk.stored_sources import IndexPipelines, Post, ReadBackFailed, read_back, runs_pipeline
from beater.http.drain import Drain
from beater.ingest.pipeline import IngestOutcome, IngestPipeline, QueueFull
from common.engine import EngineRejected, EngineUnavailable
from common.metrics import Metrics
from common.router_tier import RouterTier

log = Logger()

#: Stored documents handled at once: bounds what one bulk holds in memory, and one ``_mget``.
CHUNK = 1000
#: How long a chunk waits for room in a full ingest queue before its documents count as unpublished.
QUEUE_WAIT = 30.0
#: ``(name written to, index stored in)`` pairs remembered as known to the read targets; past this, forgotten.
NAMES_MAX = 10_000

#: Why a stored document was not published, and what an operator can do about it.
CAUSES = {
    "unpaired": "the engine's answer does not pair with the request's actions",
    "read_back_failed": "the engine did not give back the stored documents (settings or _mget)",
    "gone_before_read": "the document was deleted before it could be read back",
    "rewritten_before_read": "the document was written again before it could be read back",
    "source_not_stored": "the index does not keep _source, so what a pipeline stored cannot be read",
    "no_router": "not connected to the router",
    "queue_full": "the ingest queue stayed full (ESTROM_QUEUE_MAX_DOCS)",
    "shutting_down": "the beater is shutting down (its grace is over)",
    "publish_failed": "percolating or publishing failed after the answer",
}


class StoredPublisher:
    """Publishes what bulk requests stored; owns the unpublished accounting."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        wamp: RouterTier,
        metrics: Metrics,
        clock: IReactorTime,
        index_pipelines: IndexPipelines,
        post: Post,
        drain: Drain,
        refresh_targets: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.wamp = wamp
        self.metrics = metrics
        self.clock = clock
        #: which indices run a default or final pipeline
        self.index_pipelines = index_pipelines
        #: ``_mget`` to the engine, with estrom's credentials
        self.post = post
        #: Queued work counts as in flight, so that a shutdown waits for it; once the drain's grace
        #: ran out (``giving_up``), nothing more is queued.
        self.drain = drain
        #: Re-reads the read targets' aliases and data streams (``QueryStore.refresh_targets``).
        self.refresh_targets = refresh_targets
        self.names_known: set[tuple[str, str]] = set()
        #: the causes already logged (each is logged once, then counted)
        self.logged: set[str] = set()

    async def publish(
        self, body: IO[bytes], answer: IO[bytes], target: str | None, pipeline: str | None
    ) -> int:
        """Queue what the engine stored for percolation and publishing; how many will not be published.

        ``target`` is the path's ``/<target>/_bulk``, ``pipeline`` the request's ``pipeline`` parameter.
        """
        body.seek(0)
        unpublished = 0
        handled = 0
        chunk: list[StoredDocument] = []
        try:
            for doc in stored_documents(actions(body), response_items(answer), target, pipeline):
                chunk.append(doc)
                if len(chunk) >= CHUNK:
                    handled += len(chunk)
                    unpublished += await self._chunk(chunk)
                    chunk = []
        except (Unpaired, ValueError, ijson.JSONError) as exc:
            # The engine's answer is passed on whatever it holds; what cannot be paired is not published.
            self.metrics.inc("bulk_unpaired_total")
            left = max(stored_count(answer) - handled - len(chunk), 0)
            unpublished += self.unpublished(left, "unpaired", str(exc))
        if chunk:
            unpublished += await self._chunk(chunk)
        return unpublished

    async def _chunk(self, docs: list[StoredDocument]) -> int:
        self.metrics.inc("bulk_documents_total", len(docs), outcome="stored")
        unpublished = 0
        try:
            docs, missing = await self._as_stored(docs)
        except ReadBackFailed as exc:
            return self.unpublished(len(docs), "read_back_failed", str(exc))
        for cause, count in missing.items():
            unpublished += self.unpublished(count, cause)
        names = {(d.written_as, d.index) for d in docs if d.written_as is not None}
        await self._learn_names(names)
        return unpublished + await self._queue(docs)

    async def _as_stored(self, docs: list[StoredDocument]) -> tuple[list[StoredDocument], dict[str, int]]:
        """The documents with their source as stored: read back where a pipeline ran or none is in hand."""
        try:
            settings = await self.index_pipelines.of({d.index for d in docs})
        except (OSError, ValueError, RuntimeError) as exc:
            raise ReadBackFailed(str(exc)) from None
        to_read = [d for d in docs if d.source is None or runs_pipeline(d.pipeline, settings.get(d.index))]
        if not to_read:
            return docs, {}
        started = self.clock.seconds()
        try:
            read = await read_back(self.post, to_read)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ReadBackFailed(str(exc)) from None
        self.metrics.inc("bulk_read_back_total", len(to_read))
        self.metrics.observe("bulk_read_back_seconds", self.clock.seconds() - started)
        reading = {id(d) for d in to_read}
        found = {id(d) for d in read.found}
        return [d for d in docs if id(d) not in reading or id(d) in found], read.missing

    async def _learn_names(self, names: set[tuple[str, str]]) -> None:
        """Writes through an alias or a data stream name: make sure the read targets know that name.

        The engine reports the index it stored in (a data stream's backing
        ``.ds-<stream>-000001``); the document is percolated under that
        index, and the targets match it by every name that leads there,
        the data stream's included, once they have read the engine's
        aliases and data streams. A data stream this very bulk created (or
        rolled over) is not known until the next lifecycle sweep: the first
        time a ``(name, index)`` pair is seen, the targets are re-read before
        its documents are queued. Only the first: a sweep keeps them fresh.
        """
        new = names - self.names_known
        if not new or self.refresh_targets is None:
            return
        try:
            await self.refresh_targets()
        except (EngineUnavailable, EngineRejected) as exc:
            # Percolated with what is known (the backing index, patterns on it); tried again next bulk.
            log.warn("bulk.targets_refresh_failed", error=str(exc))
            return
        if len(self.names_known) + len(new) > NAMES_MAX:
            self.names_known.clear()
        self.names_known |= new

    async def _queue(self, docs: list[StoredDocument]) -> int:
        if not docs:
            return 0
        if self.drain.giving_up:
            return self.unpublished(len(docs), "shutting_down")
        if self.wamp.session is None:
            return self.unpublished(len(docs), "no_router")
        by_index: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for doc in docs:
            source = doc.source or {}
            if doc.doc_id is not None:
                source = {**source, "_id": doc.doc_id}
            by_index.setdefault(doc.index, []).append((doc.position, source))
        queued = 0
        for index, batch in by_index.items():
            try:
                d = await self._submit(index, batch)
            except QueueFull as exc:
                return self.unpublished(len(docs) - queued, "queue_full", str(exc))
            queued += len(batch)
            self.drain.track(d).addCallbacks(self._published, self._failed, errbackArgs=(len(batch),))
        return 0

    def _published(self, outcome: IngestOutcome) -> None:
        refused = len(outcome.rejected)
        self.metrics.inc("bulk_documents_total", outcome.accepted, outcome="published")
        if refused:
            self.metrics.inc("bulk_documents_total", refused, outcome="not_percolated")

    def _failed(self, failure: Failure, size: int) -> None:
        self.unpublished(size, "publish_failed", failure.getErrorMessage())

    async def _submit(self, index: str, docs: list[tuple[int, dict[str, Any]]]) -> Any:
        """The pipeline's Deferred for ``docs``; waits for room while the ingest queue is full."""
        deadline = self.clock.seconds() + QUEUE_WAIT
        while True:
            try:
                return self.pipeline.submit(index, docs, [])
            except QueueFull:
                if self.clock.seconds() >= deadline or self.drain.giving_up:
                    raise
                await deferLater(self.clock, 0.05, lambda: None)

    def unpublished(self, size: int, cause: str, detail: str = "") -> int:
        """Count ``size`` stored documents as unpublished for ``cause``; the first time, say so."""
        if size <= 0:
            return 0
        self.metrics.inc("bulk_documents_total", size, outcome="unpublished")
        self.metrics.inc("bulk_unpublished_total", size, cause=cause)
        if cause not in self.logged:
            self.logged.add(cause)
            log.warn(
                "bulk.unpublished",
                cause=cause,
                reason=CAUSES.get(cause, cause),
                documents=size,
                detail=detail,
                note="logged once per cause; see estrom_beater_bulk_unpublished_total",
            )
        else:
            log.debug("bulk.unpublished", cause=cause, documents=size, detail=detail)
        return size


def request_pipeline(uri: bytes) -> str | None:
    """The ``pipeline`` parameter of a bulk request's URI (None: none)."""
    _path, _sep, query = uri.partition(b"?")
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "pipeline":
            return value
    return None
