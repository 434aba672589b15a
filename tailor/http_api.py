"""The tailor's HTTP face: ``GET /api/v0.1/docs``, ``/healthz``, ``/metrics``.

A tail request is checked, resolved to a sid over WAMP (register or
describe), joined to the sid's shared subscription, backfilled, and only
then answered 200: every failure up to that point is a plain JSON error
(400/404/503); after it, failures end the document with an ``"error"``.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request
from twisted.web.server import Site

from common import names
from common.config import Settings
from common.engine import Engine, EngineRejected, EngineUnavailable
from common.http import HTTPError, JsonErrorChannel, QuietSite, Routes, write_health, write_metrics
from common.metrics import Metrics
from common.query.identity import InvalidQuery, normalize_query, sid_for
from common.wamp import RouterUnavailable, SessionHolder
from tailor.backfill import Backfill
from tailor.client_stream import ClientStream, StreamStats
from tailor.params import BadParameter, TailRequest, parse_tail_request
from tailor.reader_gate import ReaderGate
from tailor.stream_format import framing_for
from tailor.subscriptions import SubscribeFailed, SubscriptionHub

log = Logger()

API = ("api", "v0.1")


def build_metrics(api_ref: list[TailorAPI]) -> Metrics:
    """The tailor's /metrics; gauges read the live state."""
    m = Metrics("estrom_tailor_")
    m.gauge("clients", "Connected tail clients.", lambda: len(api_ref[0].streams))
    m.gauge("subscriptions", "WAMP subscriptions (sids) held by this tailor.", lambda: len(api_ref[0].hub))
    m.gauge(
        "pending_bytes",
        "Bytes waiting for slow clients, over all clients.",
        lambda: sum(s.pending_bytes for s in api_ref[0].streams),
    )
    m.counter("streams_total", "Tail requests answered 200, by format.", labels=("format",))
    m.counter(
        "requests_failed_total", "Tail requests refused before streaming, by status.", labels=("status",)
    )
    m.counter("hits_sent_total", "Hits framed for clients (backfill and live).")
    m.counter("clients_dropped_total", "Clients dropped for falling behind, by reason.", labels=("reason",))
    m.counter(
        "reader_refusals_total",
        "Tail requests refused for readers (issue 15), by limit or error.",
        labels=("reason",),
    )
    m.counter(
        "streams_ended_total",
        "Streams ended, by how (limit, timeout, client_gone, error codes).",
        labels=("how",),
    )
    m.histogram(
        "delivery_seconds",
        "Per tail and event: from the event's arrival from the router to its hits handed to the tail's connection.",
    )
    return m


class BoundedSendChannel(JsonErrorChannel):
    """A connection whose kernel send buffer is capped.

    Left to autotuning, a stalled reader's socket soaks up megabytes before
    Twisted even tells the stream to hold back: the backlog then escapes the
    counted ``max_pending`` budget, and the closing ``"error"`` queues behind
    it. Capped, the backlog builds where it is counted and dropped.
    """

    send_buffer = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.send_buffer:
            with contextlib.suppress(OSError, AttributeError):
                self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)


class TailSite(QuietSite):
    protocol = BoundedSendChannel

    def __init__(self, resource: Any, send_buffer: int) -> None:
        super().__init__(resource)
        self.send_buffer = send_buffer

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        channel.send_buffer = self.send_buffer
        return channel


class _Stats(StreamStats):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def hits_sent(self, n: int) -> None:
        self.metrics.inc("hits_sent_total", n)

    def dropped(self, reason: str) -> None:
        self.metrics.inc("clients_dropped_total", reason=reason)

    def ended(self, how: str) -> None:
        self.metrics.inc("streams_ended_total", how=how)


def _wamp_error(exc: Exception) -> HTTPError:
    """A failed register/describe call as the HTTP error the contract names."""
    if isinstance(exc, ApplicationError):
        reason = str(exc.args[0]) if exc.args else exc.error
        if exc.error == names.INVALID_QUERY:
            return HTTPError(400, "invalid_query", reason)
        if exc.error == names.INVALID_INDEX:
            return HTTPError(400, "invalid_index", reason)
        if exc.error == names.NO_SUCH_QUERY:
            return HTTPError(404, "no_such_query", reason)
        if exc.error == names.UNAVAILABLE:
            return HTTPError(503, "unavailable", reason)
        if exc.error == "wamp.error.no_such_procedure":
            return HTTPError(503, "unavailable", "no beater is registered with the router; retry later")
        return HTTPError(503, "unavailable", f"router answered {exc.error}: {reason}")
    return HTTPError(503, "unavailable", f"router call failed: {exc.__class__.__name__}: {exc}")


class TailorAPI:
    """Owns the HTTP handlers, the live streams and what they need."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        wamp: SessionHolder,
        hub: SubscriptionHub,
        clock: IReactorTime,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.wamp = wamp
        self.hub = hub
        self.clock = clock
        #: readers (issue 15): set by the app; None lets everyone read (in-memory tests)
        self.gate: ReaderGate | None = None
        self.backfill = Backfill(engine)
        self.streams: set[ClientStream] = set()
        self.metrics = build_metrics([self])
        self._stats = _Stats(self.metrics)
        hub.on_delivered = lambda seconds: self.metrics.observe("delivery_seconds", seconds)

    def site(self) -> Site:
        routes = Routes(
            {
                ("GET", (*API, "docs")): self.docs,
                ("GET", ("healthz",)): self.healthz,
                ("GET", ("metrics",)): self.metrics_page,
            }
        )
        return TailSite(routes, self.settings.tailor_send_buffer)

    def _unavailable(self, reason: str) -> HTTPError:
        return HTTPError(503, "unavailable", reason, headers={"Retry-After": str(self.settings.retry_after)})

    async def _call(self, procedure: str, *args: Any) -> Any:
        try:
            session = self.wamp.require()
        except RouterUnavailable as exc:
            raise self._unavailable(str(exc)) from None
        d = session.call(procedure, *args)
        d.addTimeout(self.settings.engine_timeout + 5.0, self.clock)
        try:
            return await d
        except Exception as exc:
            err = _wamp_error(exc)
            if err.status == 503:
                err.headers["Retry-After"] = str(self.settings.retry_after)
            raise err from None

    async def _resolve(self, tail: TailRequest) -> tuple[str, str, str | dict[str, Any]]:
        """(sid, index, query) of the request: registered, or looked up by sid.

        A sid this tailor already subscribes to is registered and active (it
        has a subscriber: us), so its clients skip the round trip through the
        beater: opening a thousand tails of one query costs one registration.
        """
        if tail.sid is None:
            assert tail.index is not None
            assert tail.query is not None
            held = self.hub.get(sid_for(tail.index, tail.query))
            if held is not None and held.described is not None:
                return held.sid, tail.index, tail.query
            sid = await self._call(names.REGISTER_QUERY, tail.index, tail.query)
            return str(sid), tail.index, tail.query
        held = self.hub.get(tail.sid)
        if held is not None and held.described is not None:
            return tail.sid, *held.described
        found = await self._call(names.DESCRIBE_QUERY, tail.sid)
        try:
            index, query = str(found["index"]), normalize_query(found["query"])
        except (KeyError, TypeError, InvalidQuery) as exc:
            raise self._unavailable(f"describe_query answered something unusable: {exc}") from None
        # Registering the described query again (same sid: the stored query is
        # canonical) marks it active before we subscribe, so a query idle for a
        # while is percolated again from the first hit on.
        sid = str(await self._call(names.REGISTER_QUERY, index, query))
        return sid, index, query

    async def docs(self, request: Request, rest: list[str]) -> None:
        try:
            await self._docs(request)
        except HTTPError as err:
            self.metrics.inc("requests_failed_total", status=str(err.status))
            if err.status in (401, 403, 429):
                self.metrics.inc("reader_refusals_total", reason=str(err.extra.get("limit", err.code)))
            raise

    async def _docs(self, request: Request) -> None:
        if self.settings.tailor_cors_origin:
            # Pages served elsewhere (the router's, on another port) tail with EventSource.
            request.setHeader(b"access-control-allow-origin", self.settings.tailor_cors_origin.encode())
        args = {
            k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
            for k, vs in request.args.items()
        }
        last_event_id = request.getHeader(b"last-event-id")
        try:
            tail = parse_tail_request(
                args,
                last_event_id.decode("utf-8", "replace") if last_event_id else None,
                self.settings.tailor_max_backfill,
                self.settings.query_limits(),
            )
        except BadParameter as exc:
            raise HTTPError(400, exc.code, exc.reason) from None

        held = self._admit(request, args, tail)  # readers: 401/403/429 before anything is resolved
        try:
            sid, index, query = await self._resolve(tail)
            if self.gate is not None and held is not None and tail.sid is not None:
                self.gate.check(held[0], index, as_missing_sid=tail.sid)
        except BaseException:
            self._release(held)
            raise
        await self._stream(request, tail, sid, index, query, held)

    def _admit(self, request: Request, args: dict[str, list[str]], tail: TailRequest) -> Any:
        """The caller and its tail slot (released when the stream ends), or an HTTPError."""
        if self.gate is None:
            return None
        identity = self.gate.identify(request, (args.get("token") or [None])[-1])
        if tail.index is not None:
            self.gate.check(identity, tail.index)
        key = self.gate.key(identity, request)
        self.gate.hold_tail(key)
        return identity, key

    def _release(self, held: Any) -> None:
        if self.gate is not None and held is not None:
            self.gate.release_tail(held[1])

    async def _stream(
        self, request: Request, tail: TailRequest, sid: str, index: str, query: Any, held: Any
    ) -> None:
        released = False

        def release(_stream: Any = None) -> None:
            nonlocal released
            if not released:
                released = True
                self._release(held)

        request.notifyFinish().addBoth(release)
        stream = ClientStream(
            request,
            framing_for(tail.format),
            self.clock,
            limit=tail.limit,
            timeout=tail.timeout,
            heartbeat=self.settings.tailor_heartbeat,
            max_pending=self.settings.tailor_max_pending,
            stats=self._stats,
            on_gone=self._stream_gone(sid, linger=tail.format == "sse"),
        )
        if stream.gone:
            return
        self.streams.add(stream)
        try:
            sub = await self.hub.join(sid, stream, history=tail.format == "sse")
        except (RouterUnavailable, SubscribeFailed) as exc:
            self._abandon(sid, stream)
            raise self._unavailable(str(exc)) from None
        if stream.gone:  # left while we subscribed; on_gone ran before the join
            self.hub.leave(sid, stream)
            return
        sub.described = (index, query)
        joined_at = sub.last_seq
        resume = sub.resume(tail.last_event_id) if tail.last_event_id else None
        backfill: list[Any] = []
        if tail.backfill and resume is None:
            try:
                backfill = await self.backfill.fetch(index, query, tail.backfill)
            except EngineUnavailable as exc:
                self._abandon(sid, stream)
                raise self._unavailable(str(exc)) from None
            except EngineRejected as exc:
                self._abandon(sid, stream)
                raise HTTPError(400, "invalid_query", f"backfill search refused: {exc.reason}") from None
        self.metrics.inc("streams_total", format=tail.format)
        log.debug("stream.start", sid=sid, stream_format=tail.format, backfill=len(backfill))
        stream.start(sid, sub.event_id, backfill, sub.event_id(joined_at), resume)

    def _abandon(self, sid: str, stream: ClientStream) -> None:
        self.streams.discard(stream)
        self.hub.leave(sid, stream)
        stream.abandon()

    def _stream_gone(self, sid: str, linger: bool) -> Any:
        def gone(stream: ClientStream) -> None:
            self.streams.discard(stream)
            self.hub.leave(sid, stream, linger=linger)

        return gone

    def close_all(self, error: str, reason: str) -> None:
        """End every stream with an error (router lost, shutting down)."""
        for stream in list(self.streams):
            stream.fail(error, reason)

    async def healthz(self, request: Request, rest: list[str]) -> None:
        await write_health(request, self.engine, self.wamp)

    async def metrics_page(self, request: Request, rest: list[str]) -> None:
        write_metrics(request, self.metrics)
