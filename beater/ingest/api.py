"""The beater's HTTP face: ``POST /api/v0.1/ingest/<index>``, ``/healthz``, ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request

from beater.http.drain import Drain
from beater.http.request_body import LimitedRequest
from beater.ingest.body import (
    IngestBody,
    TooManyDocuments,
    UnreadableBody,
    media_type_problem,
    parse_ingest_body,
)
from beater.ingest.pipeline import IngestOutcome, IngestPipeline, QueueFull, RequestTooLarge
from beater.writers.gate import WriterGate
from common.config import Settings
from common.contract import (
    INVALID_INDEX,
    NOT_FOUND,
    QUEUE_FULL,
    TOO_MANY_DOCUMENTS,
    UNAVAILABLE,
    UNREADABLE_BODY,
    UNSUPPORTED_MEDIA_TYPE,
    WRITER_FORBIDDEN,
)
from common.engine import Engine, EngineRejected
from common.errors import RetryLater, ShuttingDown
from common.http import Handler, HTTPError, answered_or_gone, write_health, write_json, write_metrics
from common.indices import index_name_problem
from common.metrics import Metrics
from common.router_tier import RouterTier
from common.wamp import RouterUnavailable

log = Logger()

#: Seconds the first write into a name waits for the engine's aliases at most.
LEARN_WAIT = 2.0


class BeaterAPI:
    """Owns the handlers of estrom's own routes (``beater/http/routing.py``) and what they need.

    Also the body gate of a listener serving them (``beater/sites.py``): it
    admits an ingest body, and refuses a credential that is nobody's before
    any body is read.
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: IngestPipeline,
        engine: Engine,
        wamp: RouterTier,
        metrics: Metrics,
        gate: WriterGate,
        drain: Drain,
        clock: IReactorTime | None = None,
        learn_index: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self.settings = settings
        #: Who writes, and which indices they may (the access file's writers).
        self.gate = gate
        #: the first write into a name: re-read the engine's aliases (``TargetSet.first_write``)
        self.learn_index = learn_index
        self.clock = clock
        self.pipeline = pipeline
        self.engine = engine
        self.wamp = wamp
        self.metrics = metrics
        #: SIGTERM: new requests get 503, those in flight may finish (shared with the bulk API).
        self.drain = drain
        metrics.counter(
            "body_refusals_total",
            "Request bodies refused (413) by the bound they passed: max_body (raw or decoded size), "
            "max_ratio (compression ratio), max_docs (items).",
            labels=("limit",),
        )

    def handlers(self) -> dict[str, Handler]:
        """The handler of each of estrom's own routes, by the route's name."""
        return {"ingest": self.ingest, "healthz": self.healthz, "metrics": self.metrics_page}

    def admit_body(self, request: LimitedRequest) -> HTTPError | None:
        """An ingest body is read only for a request it can serve: refused otherwise, unread.

        Called by ``LimitedRequest`` once the request is in, before its body
        is decoded or parsed: a request refused anyway (401, 403, 404, 400,
        415) costs no decoding. An admitted body is decoded within its
        route's bounds. Other routes (the bulk API included) read their bodies as before.
        """
        route = request.route
        if route is None or route.name != "ingest":
            return None
        try:
            self._before_body(request, list(route.rest))
        except HTTPError as refusal:
            return refusal
        return None

    def body_refused(self, limit: str) -> None:
        """A body refused for passing a bound: counted by bound (``estrom_beater_body_refusals_total``)."""
        self.metrics.inc("body_refusals_total", limit=limit)

    def early_refusal(self, request: LimitedRequest) -> HTTPError | None:
        """Credentials that are nobody's, refused when the headers are in: no byte of the body is read.

        estrom's own routes are judged by estrom; the engine's API (bulk,
        pass-through) as its mode says (``ESTROM_BULK_AUTH``).
        """
        route = request.route
        try:
            self.gate.identify(request, engine_api=route is not None and route.engine_api)
        except HTTPError as refusal:
            if route is None or route.name == "ingest":
                self.metrics.inc("ingest_requests_total", outcome="unauthorized")
            return refusal
        return None

    def _check_writer(self, request: Request, index: str) -> None:
        """401 for a credential that is nobody's; 403 for an index outside the writer's targets."""
        try:
            identity = self.gate.identify(request)
        except HTTPError:
            self.metrics.inc("ingest_requests_total", outcome="unauthorized")
            raise
        reason = self.gate.ingest_refusal(identity, index)
        if reason is not None:
            self.metrics.inc("ingest_requests_total", outcome="forbidden")
            self.metrics.inc("write_refusals_total", reason="ingest")
            raise HTTPError.of(WRITER_FORBIDDEN, reason)

    async def ingest(self, request: Request, rest: list[str]) -> None:
        started = time.perf_counter()
        outcome = "internal"
        try:
            await self._ingest(request, rest)
            outcome = "ok"
        except HTTPError as err:
            outcome = err.code
            raise
        except RetryLater:  # answered 503 by Routes
            outcome = UNAVAILABLE.code
            self.metrics.inc("ingest_requests_total", outcome=outcome)
            raise
        except CancelledError:
            outcome = "client_gone"
            raise
        finally:
            self.metrics.observe("ingest_request_seconds", time.perf_counter() - started, outcome=outcome)
            self.drain.close_if_draining(request)  # errors are written after this

    async def _matched_as(self, request: Request, index: str) -> str:
        """The index the documents are matched as, checked against the writer once more.

        The first write into a name re-reads the engine's aliases (briefly: a
        slow engine only means the name is taken as it is), so that an alias
        made a moment ago is known; the documents then go to the pipeline
        under the index that this check saw, so access and matching agree.
        """
        if self.learn_index is not None and self.clock is not None:
            learn_index = self.learn_index

            async def learned() -> object:
                return await learn_index(index)

            learning = Deferred.fromCoroutine(learned())
            learning.addTimeout(min(self.settings.engine_timeout, LEARN_WAIT), self.clock)
            try:
                await learning
            except Exception as exc:  # the engine's trouble is the pipeline's to report
                log.debug("ingest.aliases_unread", index=index, error=str(exc))
        concrete = self.gate.percolated_as(index)
        if concrete != index:
            self._check_writer(request, index)
        return concrete

    def _before_body(self, request: Request, rest: list[str]) -> str:
        """Every refusal made before the body is read (401, 404, 400, 403, 415); the index otherwise.

        Runs twice on the beater's own site, in ``admit_body`` and in the
        handler: refusals are counted once (the handler re-raises the first),
        a check that passes counts nothing.
        """
        if len(rest) != 1:
            self.gate.identify(request)
            raise HTTPError.of(NOT_FOUND, "use POST /api/v0.1/ingest/<index>")
        index = rest[0]
        problem = index_name_problem(index)
        if problem:
            self.gate.identify(request)
            self.metrics.inc("ingest_requests_total", outcome="bad_request")
            raise HTTPError.of(INVALID_INDEX, problem)
        self._check_writer(request, index)
        self._check_media_type(request)
        return index

    def _check_media_type(self, request: Request) -> None:
        """415 for a body that is not JSON, or has no type: what cross-site forms send is never read."""
        problem = media_type_problem((request.getHeader(b"content-type") or b"").decode("latin-1"))
        if problem is not None:
            self.metrics.inc("ingest_requests_total", outcome="unsupported_media_type")
            raise HTTPError.of(UNSUPPORTED_MEDIA_TYPE, problem)

    async def _ingest(self, request: Request, rest: list[str]) -> None:
        if isinstance(request, LimitedRequest) and request.refusal is not None:
            raise request.refusal  # decided and counted by admit_body, before the body was read
        index = self._before_body(request, rest)
        index = await self._matched_as(request, index)
        if isinstance(request, LimitedRequest) and request.body_error is not None:
            status = request.body_error.status
            outcome = {413: "too_large", 415: "unsupported_encoding"}.get(status, "bad_request")
            self.metrics.inc("ingest_requests_total", outcome=outcome)
            raise request.body_error
        raw = request.content.read() if request.content is not None else b""
        content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
        try:
            body = parse_ingest_body(
                raw, content_type, self.settings.ingest_max_depth, self.settings.ingest_max_docs
            )
        except TooManyDocuments as exc:
            self.metrics.inc("ingest_requests_total", outcome="too_large")
            self.body_refused("max_docs")
            raise HTTPError.of(
                TOO_MANY_DOCUMENTS,
                str(exc),
                limit=self.settings.ingest_max_docs,
                setting="ESTROM_INGEST_MAX_DOCS",
            ) from None
        except UnreadableBody as exc:
            self.metrics.inc("ingest_requests_total", outcome="bad_request")
            raise HTTPError.of(UNREADABLE_BODY, exc.reason, rejected=exc.rejected) from None
        self.drain.refuse_new(request)
        if self.wamp.session is None:
            raise RouterUnavailable("not connected to the router; retry later")
        try:
            submitted = await self._submit(index, body)
        except CancelledError:
            if answered_or_gone(request):
                # The sender left: its documents still go through (at-least-once).
                self.metrics.inc("ingest_requests_total", outcome="client_gone")
                raise
            raise ShuttingDown("beater") from None
        except RequestTooLarge as exc:
            self.metrics.inc("ingest_requests_total", outcome="too_large")
            raise HTTPError.of(TOO_MANY_DOCUMENTS, str(exc)) from None
        except QueueFull as exc:
            self.metrics.inc("ingest_requests_total", outcome="queue_full")
            raise HTTPError.of(
                QUEUE_FULL, str(exc), headers={"Retry-After": str(self.settings.retry_after)}
            ) from None
        except EngineRejected as exc:
            # The engine refused a whole batch it should have taken item by item.
            raise RetryLater(f"engine refused the batch: {exc.reason}") from None
        self.metrics.inc("ingest_requests_total", outcome="ok")
        self.metrics.inc("ingest_documents_total", outcome="accepted", amount=submitted.accepted)
        self.metrics.inc("ingest_documents_total", outcome="rejected", amount=len(submitted.rejected))
        self.metrics.inc("published_hits_total", amount=submitted.published)
        self.drain.close_if_draining(request)
        write_json(request, 200, submitted.as_json())

    def _submit(self, index: str, body: IngestBody) -> Deferred[IngestOutcome]:
        """Queue the request's documents, tracked so that a shutdown can wait for it."""
        return self.drain.track(self.pipeline.submit(index, body.docs, body.rejected))

    async def healthz(self, request: Request, rest: list[str]) -> None:
        await write_health(request, self.engine, self.wamp)

    async def metrics_page(self, request: Request, rest: list[str]) -> None:
        write_metrics(request, self.metrics)
