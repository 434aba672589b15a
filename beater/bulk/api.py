"""The engine's bulk API, written through: ``POST /_bulk`` and ``POST /<target>/_bulk``.

A shipper that speaks only the engine's API (Filebeat, Fluent Bit, Vector,
rsyslog's omelasticsearch, every client's bulk helper) points at the beater
instead of the engine. Each bulk request is forwarded to the engine as it
is (asked in full: a ``filter_path`` is applied here, ``filter_path``); the
documents the engine reports stored are percolated and published like
ingested ones, with the ``_index`` and ``_id`` the engine reported and as
the engine stored them: after an ingest pipeline, and for an ``update``,
the document after the update (``publish``); then the shipper gets the
engine's own answer, status for status, item for item (per-item 429s are
retried by the shipper as usual). ``delete`` publishes nothing.

The requests a shipper makes at start-up (``GET /``, index and component
templates, ILM policies, ``_license``, ``_cluster/health``, ``_nodes``) are
passed through, their writes checked as below; nothing else of the engine's API is served here
(404).

The engine stores first; estrom publishes after. When the router is down
(or does not acknowledge in time), the documents are stored all the same and
the shipper gets the engine's answer unchanged, plus an
``X-Estrom-Unpublished: <n>`` header; the beater counts them in
``estrom_beater_bulk_documents_total{outcome="unpublished"}`` and
``estrom_beater_bulk_unpublished_total{cause=...}``, and logs a warning the
first time for each cause. So does every other document stored but not
published (an answer that does not pair, a document rewritten before it
could be read back). Tails hear of it from their tailor, which lost the router too: an
NDJSON or SSE stream gets its ``gap`` notice when the router is back, a JSON
stream ends with an ``"error"``. Answering 503 instead would make the shipper
send again what the engine already stored: duplicates in the store, which is
worse than a gap in a live view.

A write through a data stream or alias name is matched by that name too:
the engine reports the backing index, which the hits carry as ``_index``,
and the read targets are re-read the first time a ``(name, index)`` pair is
seen (``StoredPublisher``). On SIGTERM, bulk requests already read are
finished and their documents published before the beater leaves the router
(``_track_request``); new ones get 503 (``beater/http/drain.py``).

Writers are checked on every path (``beater/writers/gate.py``): a credential
that is no writer's is 401 and never forwarded; each item's target (its
``_index``, else the path's) must be inside the writer's targets, else the
item gets the engine's own 403 item shape while the rest goes through
(``beater/bulk/screen.py``); an update's answer never carries the stored
document; the pass-through's writes (templates, ILM policies) stay inside
the writer's targets (``beater/bulk/passthrough_rules.py``). The engine is asked
with the credentials of ``ESTROM_ENGINE_URL``, if it has any. Only
``ESTROM_BULK_AUTH=engine`` forwards the shipper's own credentials, for an
engine whose security is on; estrom's own and hidden indices stay out of
reach in that mode too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any

import ijson
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import Request
from twisted.web.http_headers import Headers

from beater.bulk.answers import answer_refused, is_json, replace_body, send_answer
from beater.bulk.filter_path import filtered_answer, split_filter_path
from beater.bulk.passthrough_rules import passthrough_refusal
from beater.bulk.publish import StoredPublisher, request_pipeline
from beater.bulk.screen import Screened, UnreadableBulk, rewritten_answer, scan, screen, without_source_params
from beater.http.drain import Drain, close_after
from beater.http.forwarder import EngineAnswer, EngineForwarder, EngineUnreachable, forwarded_headers
from beater.http.request_body import LimitedRequest
from beater.http.routing import BULK, PASSTHROUGH
from beater.writers.gate import WriterGate
from common.access.writers import WriterIdentity
from common.contract import ENGINE_ERROR, ENGINE_ILLEGAL_ARGUMENT, ENGINE_SECURITY_EXCEPTION
from common.errors import RetryLater
from common.http import Handler, HTTPError
from common.metrics import Metrics

log = Logger()


class BulkAPI:
    """Owns the bulk write-through and the start-up pass-through."""

    def __init__(
        self,
        forwarder: EngineForwarder,
        stored: StoredPublisher,
        metrics: Metrics,
        gate: WriterGate,
        drain: Drain,
    ) -> None:
        #: Who writes, and where they may (every item, every pass-through write).
        self.gate = gate
        #: SIGTERM: new bulk requests get 503; a request in flight is waited for, then given up
        #: (``_give_up``). Shared with estrom's own routes.
        self.drain = drain
        self._forwarding: set[Deferred[EngineAnswer]] = set()
        #: Bulk requests between their whole body received and their answer (or refusal).
        self.in_flight = 0
        metrics.gauge(
            "bulk_requests_in_flight",
            "Bulk requests being forwarded, queued for percolation or answered.",
            lambda: self.in_flight,
        )
        self.forwarder = forwarder
        #: Publishes what the engine stored (and stops queuing once ``giving_up``).
        self.stored = stored
        self.metrics = metrics

    def handlers(self) -> dict[str, Handler]:
        """The handler of each route of the engine's API (``beater/http/routing.py``), by name."""
        return {BULK: self.bulk, PASSTHROUGH: self.passthrough}

    async def bulk(self, request: Request, segments: list[str]) -> None:
        """``POST /_bulk``, ``POST /<target>/_bulk``: forwarded, then what the engine stored is published."""
        identity, headers = self._admit(request)
        target = segments[0] if len(segments) == 2 else None
        work = ensureDeferred(self._bulk(request, headers, identity, target))
        self._track_request(work)
        await _shielded(work)

    async def passthrough(self, request: Request, segments: list[str]) -> None:
        """A shipper's start-up request (templates, ILM, ``GET /``): forwarded, its writes checked."""
        identity, headers = self._admit(request)
        await _shielded(ensureDeferred(self._passthrough(request, headers, identity, segments)))

    def _admit(self, request: Request) -> tuple[WriterIdentity, Headers]:
        """The writer (401 for a credential that is nobody's) and the engine's headers; 503 while draining."""
        identity = self.gate.identify(request, engine_api=True)
        headers = self._credentials(request)
        self.drain.refuse_new(request)
        return identity, headers

    def _track_request(self, work: Deferred[None]) -> None:
        """Count a bulk request as in flight until it is answered: a SIGTERM's drain waits for it.

        The drain waits for everything tracked, and the documents the
        request queues are tracked too, before this one ends: so the beater
        leaves the router only after publishing what the engine acknowledged.
        Past the drain's grace, it cancels what is tracked: here that gives
        up (``_give_up``) instead of cutting the request's answer short.
        """
        observer: Deferred[Any] = Deferred(lambda _d: self._give_up())

        def answered(result: object) -> object:
            if not observer.called:
                observer.callback(None)
            return result

        work.addBoth(answered)
        self.drain.track(observer)
        observer.addErrback(lambda failure: failure.trap(CancelledError) and None)

    def _give_up(self) -> None:
        """The drain's grace is over: stop waiting for the engine (503); the stored publisher stops
        waiting for queue room (unpublished) as ``drain.giving_up`` says."""
        for d in list(self._forwarding):
            d.cancel()

    def _credentials(self, request: Request) -> Headers:
        """Headers for the engine: the shipper's credentials only where the engine judges them.

        Otherwise they were estrom's (checked by the gate) and are never
        forwarded; the engine is asked with the credentials of
        ``ESTROM_ENGINE_URL``, if it has any.
        """
        # The body is forwarded decoded; the answer is read here, so it comes uncompressed
        # (Go shippers ask for gzip by default; every client takes identity).
        drop = frozenset({b"content-encoding", b"accept-encoding"})
        if self.gate.engine_judges:
            return forwarded_headers(request.requestHeaders, drop)
        headers = forwarded_headers(request.requestHeaders, drop | {b"authorization"})
        if self.forwarder.authorization is not None:
            headers.setRawHeaders(b"authorization", [self.forwarder.authorization])
        return headers

    async def _forward(
        self, request: Request, headers: Headers, body: IO[bytes] | None, uri: bytes | None = None
    ) -> EngineAnswer:
        forwarding = ensureDeferred(self.forwarder.forward(request.method, uri or request.uri, headers, body))
        self._forwarding.add(forwarding)
        try:
            return await forwarding
        except EngineUnreachable as exc:
            raise self._unreachable(request, exc) from None
        finally:
            self._forwarding.discard(forwarding)

    def _unreachable(self, request: Request, exc: RetryLater) -> RetryLater:
        """An engine that did not answer (503); past the drain's grace, saying so."""
        if not self.drain.giving_up:
            return exc
        close_after(request)
        return RetryLater(
            "the beater is shutting down and the engine did not answer within its grace "
            "(ESTROM_SHUTDOWN_GRACE): some documents may be stored; retry"
        )

    async def _passthrough(
        self, request: Request, headers: Headers, identity: WriterIdentity, segments: list[str]
    ) -> None:
        body = request.content if request.method in (b"PUT", b"POST") else None
        looked_up = segments[1] if segments[:1] == ["_alias"] else None
        if len(segments) == 1 and request.method == b"HEAD":
            looked_up = segments[0]
        if looked_up is not None:
            reason = self.gate.refusal(identity, looked_up)
            if reason is not None:
                self.metrics.inc("passthrough_requests_total", status="403")
                raise HTTPError.of(ENGINE_SECURITY_EXCEPTION, reason)
        if body is not None:
            reason = await passthrough_refusal(
                segments,
                body,
                lambda name: self.gate.refusal(identity, name),
                self._existing(headers),
                self.gate.engine_judges,
            )
            if reason is not None:
                self.metrics.inc("passthrough_requests_total", status="403")
                self.metrics.inc("write_refusals_total", reason="passthrough")
                raise HTTPError.of(ENGINE_SECURITY_EXCEPTION, reason)
            body.seek(0)
        answer = await self._forward(request, headers, body)
        self.metrics.inc("passthrough_requests_total", status=str(answer.status))
        await send_answer(request, answer, self.drain.draining)

    def _existing(self, headers: Headers) -> Callable[[str], Awaitable[Any]]:
        """``get(path)``: the engine's JSON at ``path`` (None for 404), to check what a write replaces."""

        async def get(path: str) -> Any:
            answer = await self.forwarder.forward(b"GET", path.encode(), headers, None)
            try:
                if answer.status == 404:
                    return None
                if answer.status != 200:
                    raise HTTPError.of(ENGINE_ERROR, f"the engine answered {answer.status} to GET {path}")
                return json.load(answer.body)
            finally:
                answer.body.close()

        return get

    async def _bulk(
        self, request: Request, headers: Headers, identity: WriterIdentity, target: str | None
    ) -> None:
        started = time.perf_counter()
        status = "error"
        self.in_flight += 1
        try:
            if isinstance(request, LimitedRequest) and request.body_error is not None:
                status = str(request.body_error.status)
                raise request.body_error
            screened = await self._screen(request, identity, target)
            # Asked in full, whatever filter_path the shipper sent: every item is paired
            # and published; the shipper gets the answer filtered as the engine would have.
            uri, wanted = split_filter_path(without_source_params(request.uri))
            if screened is not None and screened.all_refused:
                status = "403"
                await answer_refused(request, screened, wanted)
                return
            body = screened.body if screened is not None else request.content
            answer = await self._forward(request, headers, body, uri)
            status = str(answer.status)
            unpublished = 0
            if answer.status == 200 and body is not None:
                pipeline = request_pipeline(uri)
                unpublished = await self.stored.publish(body, answer.body, target, pipeline)
                answer.body.seek(0)
                if screened is not None and (screened.refused or screened.updates):
                    replace_body(answer, rewritten_answer(answer.body, screened.refused, screened.actions))
            if wanted is not None and is_json(answer):
                try:
                    replace_body(answer, filtered_answer(answer.body, wanted))
                except (ValueError, ijson.JSONError) as exc:  # not JSON after all: as the engine sent it
                    log.warn("bulk.filter_path_skipped", error=str(exc))
                    answer.body.seek(0)
            if unpublished:
                answer.headers.setRawHeaders(b"x-estrom-unpublished", [str(unpublished).encode()])
            await send_answer(request, answer, self.drain.draining)
        finally:
            self.in_flight -= 1
            self.metrics.inc("bulk_requests_total", status=status)
            self.metrics.observe("bulk_request_seconds", time.perf_counter() - started)

    async def _screen(
        self, request: Request, identity: WriterIdentity, target: str | None
    ) -> Screened | None:
        """Every item checked against the writer (None: no body); 400 for an unreadable one."""
        if request.content is None:
            return None
        try:
            scanned = scan(request.content, target)
        except UnreadableBulk as exc:
            raise HTTPError.of(ENGINE_ILLEGAL_ARGUMENT, str(exc)) from None
        # Asking the engine where aliases lead is engine work a drain's grace may cut short.
        lookup = ensureDeferred(self.gate.refusals(identity, scanned.names))
        self._forwarding.add(lookup)  # type: ignore[arg-type]
        try:
            refusals = await lookup
        except RetryLater as exc:
            raise self._unreachable(request, exc) from None
        finally:
            self._forwarding.discard(lookup)
        screened = screen(request.content, scanned, refusals)
        if screened.refused:
            self.metrics.inc("write_refusals_total", len(screened.refused), reason="bulk_item")
            log.info(
                "bulk.items_refused",
                writer=identity.name,
                refused=len(screened.refused),
                first=screened.refused[0].reason,
            )
        return screened


def _shielded(work: Deferred[None]) -> Deferred[None]:
    """A Deferred that follows ``work`` but whose cancelling leaves ``work`` running.

    A shipper that gives up mid-bulk must not cancel what the engine may
    already have stored: those documents are still percolated and published.
    """
    follower: Deferred[None] = Deferred()

    def done(result: Any) -> None:
        if not follower.called:
            follower.callback(result)
        elif isinstance(result, Failure):
            log.failure("bulk.failed_after_client_left", result)

    work.addBoth(done)
    return follower
