"""The beater's HTTP face: ``POST /api/v0.1/ingest/<index>``, ``/healthz``, ``/metrics``."""

from __future__ import annotations

import time

from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request
from twisted.web.server import Site

from beater.ingest_body import IngestBody, TooManyDocuments, UnreadableBody, parse_ingest_body
from beater.pipeline import IngestOutcome, IngestPipeline, QueueFull, RequestTooLarge
from beater.publish import PublishFailed
from beater.request_body import LimitedRequest, request_factory
from beater.writer_gate import WriterGate
from common.config import Settings
from common.engine import Engine, EngineRejected, EngineUnavailable
from common.http import (
    Handler,
    HTTPError,
    QuietSite,
    Routes,
    answered_or_gone,
    write_health,
    write_json,
    write_metrics,
)
from common.indices import index_name_problem
from common.metrics import Metrics
from common.wamp import RouterUnavailable, SessionHolder

log = Logger()

API = ("api", "v0.1")


class BeaterAPI:
    """Owns the HTTP handlers and what they need."""

    def __init__(
        self,
        settings: Settings,
        pipeline: IngestPipeline,
        engine: Engine,
        wamp: SessionHolder,
        metrics: Metrics,
        gate: WriterGate,
    ) -> None:
        self.settings = settings
        #: Who writes, and which indices they may (the access file's writers).
        self.gate = gate
        self.pipeline = pipeline
        self.engine = engine
        self.wamp = wamp
        self.metrics = metrics
        #: Set on SIGTERM: new requests get 503, those in flight may finish.
        self.draining = False
        self._in_flight: set[Deferred[IngestOutcome]] = set()

    def site(self, fallback: Handler | None = None, max_body: int | None = None) -> Site:
        """estrom's routes; ``fallback`` serves every other path (the engine's bulk API, if here)."""
        routes = Routes(
            {
                ("POST", (*API, "ingest")): self.ingest,
                ("GET", ("healthz",)): self.healthz,
                ("GET", ("metrics",)): self.metrics_page,
            },
            fallback=fallback,
            cancel_on_disconnect=True,
        )
        site = QuietSite(routes)
        site.requestFactory = request_factory(max_body or self.settings.ingest_max_body)
        return site

    def _unavailable(self, reason: str) -> HTTPError:
        self.metrics.inc("ingest_requests_total", outcome="unavailable")
        return HTTPError(503, "unavailable", reason, headers={"Retry-After": str(self.settings.retry_after)})

    def _check_writer(self, request: Request, index: str) -> None:
        """401 for a credential that is nobody's; 403 for an index outside the writer's targets."""
        try:
            identity = self.gate.identify(request)
        except HTTPError:
            self.metrics.inc("ingest_requests_total", outcome="unauthorized")
            raise
        reason = self.gate.refusal(identity, index)
        if reason is not None:
            self.metrics.inc("ingest_requests_total", outcome="forbidden")
            self.metrics.inc("write_refusals_total", reason="ingest")
            raise HTTPError(403, "forbidden", reason)

    async def ingest(self, request: Request, rest: list[str]) -> None:
        started = time.perf_counter()
        outcome = "internal"
        try:
            await self._ingest(request, rest)
            outcome = "ok"
        except HTTPError as err:
            outcome = err.code
            raise
        except CancelledError:
            outcome = "client_gone"
            raise
        finally:
            self.metrics.observe("ingest_request_seconds", time.perf_counter() - started, outcome=outcome)
            self._close_if_draining(request)  # errors are written after this

    @property
    def in_flight(self) -> int:
        """Ingest requests waiting for the pipeline."""
        return len(self._in_flight)

    def _close_if_draining(self, request: Request) -> None:
        """While draining, every answer closes its connection: the next request finds the port shut."""
        if self.draining:
            request.setHeader(b"connection", b"close")
            channel = getattr(request, "channel", None)
            if channel is not None:
                channel.persistent = False

    async def _ingest(self, request: Request, rest: list[str]) -> None:
        if len(rest) != 1:
            self.gate.identify(request)
            raise HTTPError(404, "not_found", "use POST /api/v0.1/ingest/<index>")
        index = rest[0]
        problem = index_name_problem(index)
        if problem:
            self.gate.identify(request)
            self.metrics.inc("ingest_requests_total", outcome="bad_request")
            raise HTTPError(400, "invalid_index", problem)
        self._check_writer(request, index)
        if isinstance(request, LimitedRequest) and request.body_error is not None:
            outcome = "unsupported_encoding" if request.body_error.status == 415 else "bad_request"
            self.metrics.inc("ingest_requests_total", outcome=outcome)
            raise request.body_error
        if isinstance(request, LimitedRequest) and request.body_size() > self.settings.ingest_max_body:
            # The listener's limit is the bulk API's, larger than ingest's.
            self.metrics.inc("ingest_requests_total", outcome="too_large")
            decoded = "decoded " if request.encoding != "identity" else ""
            reason = f"{decoded}request body is over the limit of {self.settings.ingest_max_body} bytes"
            raise HTTPError(413, "body_too_large", reason)
        raw = request.content.read() if request.content is not None else b""
        content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
        try:
            body = parse_ingest_body(
                raw, content_type, self.settings.ingest_max_depth, self.settings.ingest_max_docs
            )
        except TooManyDocuments as exc:
            self.metrics.inc("ingest_requests_total", outcome="too_large")
            raise HTTPError(413, "too_many_documents", str(exc)) from None
        except UnreadableBody as exc:
            self.metrics.inc("ingest_requests_total", outcome="bad_request")
            raise HTTPError(400, "unreadable_body", exc.reason, rejected=exc.rejected) from None
        if self.draining:
            raise self._shutting_down()
        if self.wamp.session is None:
            raise self._unavailable("not connected to the router; retry later")
        try:
            outcome = await self._submit(index, body)
        except CancelledError:
            if answered_or_gone(request):
                # The sender left: its documents still go through (at-least-once).
                self.metrics.inc("ingest_requests_total", outcome="client_gone")
                raise
            raise self._shutting_down() from None
        except RequestTooLarge as exc:
            self.metrics.inc("ingest_requests_total", outcome="too_large")
            raise HTTPError(413, "too_many_documents", str(exc)) from None
        except QueueFull as exc:
            self.metrics.inc("ingest_requests_total", outcome="queue_full")
            raise HTTPError(
                429, "queue_full", str(exc), headers={"Retry-After": str(self.settings.retry_after)}
            ) from None
        except EngineUnavailable as exc:
            raise self._unavailable(str(exc)) from None
        except (RouterUnavailable, PublishFailed) as exc:
            raise self._unavailable(str(exc)) from None
        except EngineRejected as exc:
            # The engine refused a whole batch it should have taken item by item.
            raise self._unavailable(f"engine refused the batch: {exc.reason}") from None
        self.metrics.inc("ingest_requests_total", outcome="ok")
        self.metrics.inc("ingest_documents_total", outcome="accepted", amount=outcome.accepted)
        self.metrics.inc("ingest_documents_total", outcome="rejected", amount=len(outcome.rejected))
        self.metrics.inc("published_hits_total", amount=outcome.published)
        self._close_if_draining(request)
        write_json(request, 200, outcome.as_json())

    def _submit(self, index: str, body: IngestBody) -> Deferred[IngestOutcome]:
        """Queue the request's documents, tracked so that a shutdown can wait for it."""
        return self.track(self.pipeline.submit(index, body.docs, body.rejected))

    def track(self, d: Deferred[IngestOutcome]) -> Deferred[IngestOutcome]:
        """Count ``d`` as work in flight: a shutdown waits for it (up to the grace) before leaving."""
        self._in_flight.add(d)
        d.addBoth(lambda result: (self._in_flight.discard(d), result)[1])
        return d

    def _shutting_down(self) -> HTTPError:
        return self._unavailable("the beater is shutting down; retry (another beater, or this one restarted)")

    async def drain(self, port: IListeningPort, grace: float, clock: IReactorTime) -> None:
        """SIGTERM: stop listening, let requests in flight finish for up to ``grace`` s, 503 the rest.

        A request answered 503 here may still have some matches published
        (the sender retries: at-least-once); none is ever answered 200
        without every match acknowledged, because 200 comes only from the
        pipeline. Work in flight may add more while it finishes (a bulk
        request queues its documents once the engine has answered): the
        drain waits until nothing is left, not only for what was there at
        the start.
        """
        self.draining = True
        await port.stopListening()
        log.info("beater.draining", requests=len(self._in_flight), grace=grace)
        deadline = clock.seconds() + grace
        while self._in_flight:
            observers: list[Deferred[None]] = []
            for d in list(self._in_flight):
                seen: Deferred[None] = Deferred()
                d.addBoth(lambda result, seen=seen: (seen.called or seen.callback(None), result)[1])
                observers.append(seen)
            waiting = gatherResults(observers, consumeErrors=True)
            waiting.addTimeout(max(0.0, deadline - clock.seconds()), clock)
            try:
                await waiting
            except Exception:
                left = list(self._in_flight)
                log.warn("beater.drain_timeout", refused=len(left))
                for d in left:
                    d.cancel()  # the handler answers 503
                break
        log.info("beater.drained")

    async def healthz(self, request: Request, rest: list[str]) -> None:
        await write_health(request, self.engine, self.wamp)

    async def metrics_page(self, request: Request, rest: list[str]) -> None:
        write_metrics(request, self.metrics)
