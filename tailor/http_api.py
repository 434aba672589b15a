"""The tailor's HTTP face: ``GET /api/v0.1/docs``, ``/healthz``, ``/metrics``.

A tail request is checked, resolved to a sid over WAMP (register or
describe, tailor/resolve.py), joined to the sid's shared subscription,
backfilled, and only then answered 200: every failure up to that point is a
plain JSON error (400/404/503); after it, failures end the document with an
``"error"``. A client that leaves before that cancels the work in flight.

Connections: a client has ``ESTROM_TAILOR_IDLE_TIMEOUT`` seconds to send a
request's headers (from connecting, or from the end of its previous
response), trickling bytes or not; then it is cut. Streams, once their
headers are in, have no such limit.

Browsers: a page whose origin ``ESTROM_TAILOR_CORS_ORIGIN`` lists (by
default the router's page) may read tails and counts (EventSource); the
answer names that origin (``Vary: Origin``), or ``*`` when so configured.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.web.http import Request
from twisted.web.server import Site

from common.aliases import AliasLookup, alias_members
from common.config import Settings
from common.engine import Engine, EngineRejected, EngineUnavailable
from common.http import HTTPError, JsonErrorChannel, QuietSite, Routes, write_health, write_metrics
from common.metrics import Metrics
from common.quotas import ExpiringSet
from common.readers import Identity, searchable
from common.wamp import RouterUnavailable, SessionHolder
from tailor.access_watch import AccessWatch
from tailor.backfill import Backfill, BackfillBudget, BackfillPages
from tailor.client_stream import ClientStream, StreamStats
from tailor.count_history import CountHistory, History
from tailor.count_metrics import CountSeries
from tailor.count_stream import Counters, CountStream
from tailor.counting import window_start
from tailor.params import BadParameter, CountRequest, TailRequest, parse_count_request, parse_tail_request
from tailor.reader_gate import ReaderGate, TopTails
from tailor.request_watch import RequestWatch
from tailor.resolve import Resolved, Resolver
from tailor.stream_format import count_framing_for, framing_for
from tailor.subscriptions import Listener, SharedSubscription, SubscribeFailed, SubscriptionHub

log = Logger()

API = ("api", "v0.1")


def build_metrics(api_ref: list[TailorAPI]) -> Metrics:
    """The tailor's /metrics; gauges read the live state."""
    m = Metrics("estrom_tailor_")
    m.gauge("clients", "Connected tail clients.", lambda: len(api_ref[0].streams))
    m.gauge("subscriptions", "WAMP subscriptions (sids) held by this tailor.", lambda: len(api_ref[0].hub))
    m.gauge("count_clients", "Connected count clients.", lambda: len(api_ref[0].count_streams))
    m.gauge("counters", "Shared counters (sid, by, every) of this tailor.", lambda: len(api_ref[0].counters))
    m.gauge(
        "pending_bytes",
        "Bytes waiting for slow clients, over all clients.",
        lambda: sum(s.pending_bytes for s in api_ref[0].streams),
    )
    m.counter("streams_total", "Tail requests answered 200, by format.", labels=("format",))
    m.counter("count_streams_total", "Count requests answered 200, by format.", labels=("format",))
    m.counter(
        "requests_failed_total", "Tail requests refused before streaming, by status.", labels=("status",)
    )
    m.counter(
        "requests_cancelled_total", "Requests whose client left before streaming (their work cancelled)."
    )
    m.counter("hits_sent_total", "Hits framed for clients (backfill and live).")
    m.counter("clients_dropped_total", "Clients dropped for falling behind, by reason.", labels=("reason",))
    m.counter(
        "reader_refusals_total",
        "Tail and count requests refused for readers, by limit or error.",
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
    m.gauge(
        "backfill_bytes",
        "Bytes held for n= backfills (pages in clients' hands, ids and hand-over checks), over all tails.",
        lambda: api_ref[0].backfill.budget.held,
    )
    m.gauge(
        "backfill_waiting",
        "Backfills waiting for room under ESTROM_TAILOR_BACKFILL_TOTAL.",
        lambda: api_ref[0].backfill.budget.waiting,
    )
    m.gauge("backfills", "Backfills in progress.", lambda: len(api_ref[0].backfill.open_pages))
    m.counter(
        "sid_lookups_total",
        "s= lookups: found, unknown (each a describe_query), remembered (answered 404 from memory).",
        labels=("outcome",),
    )
    m.gauge("unknown_sids", "Sids remembered as unknown.", lambda: len(api_ref[0].resolver.unknown))
    m.counter(
        "connections_timed_out_total",
        "Connections cut for not sending a request's headers within ESTROM_TAILOR_IDLE_TIMEOUT.",
    )
    m.registry.register(TopTails(lambda: api_ref[0].gate))  # readers: the largest users
    return m


class BoundedSendChannel(JsonErrorChannel):
    """A connection whose kernel send buffer is capped, and whose client must send headers in time.

    Left to autotuning, a stalled reader's socket soaks up megabytes before
    Twisted even tells the stream to hold back: the backlog then escapes the
    counted ``max_pending`` budget, and the closing ``"error"`` queues behind
    it. Capped, the backlog builds where it is counted and dropped.

    Twisted's idle timeout (the site's ``timeout``) runs from the connection
    (or the end of the last response) until a request's headers are in, and
    is off while a response streams. Twisted restarts it at every byte
    received; here it is not restarted: a client trickling a byte now and
    then must still finish its headers within the timeout.
    """

    send_buffer = 0
    on_timeout: Callable[[], None] | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.send_buffer:
            with contextlib.suppress(OSError, AttributeError):
                self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)

    def dataReceived(self, data: bytes) -> None:
        # HTTPChannel.dataReceived less its resetTimeout (see the class).
        LineReceiver.dataReceived(self, data)

    def timeoutConnection(self) -> None:
        if self.on_timeout is not None:
            self.on_timeout()
        super().timeoutConnection()


class TailSite(QuietSite):
    protocol = BoundedSendChannel

    def __init__(
        self,
        resource: Any,
        send_buffer: int,
        timeout: float = Settings.tailor_idle_timeout,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(resource, timeout=timeout)
        self.send_buffer = send_buffer
        self.on_timeout = on_timeout

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        channel.send_buffer = self.send_buffer
        channel.on_timeout = self.on_timeout
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


class TailorAPI:
    """Owns the HTTP handlers, the live streams and what they need.

    A streaming request goes: parse → (the caller's check, slots
    in here) → resolve → join → backfill → start. Until start, every failure
    is a plain HTTP error; if the client goes away meanwhile, the work in
    flight (registration, subscription, backfill) is cancelled.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        wamp: SessionHolder,
        hub: SubscriptionHub,
        clock: IReactorTime,
        gate: ReaderGate,
        aliases: AliasLookup | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.wamp = wamp
        self.hub = hub
        self.clock = clock
        #: readers: who may read what, and how much; required, so a tailor never runs open
        self.gate = gate
        #: ``aliases(target, own_prefix)``: the indices behind the aliases a target covers
        self.aliases: AliasLookup = aliases or (lambda target, own: alias_members(engine, target, own))
        #: open streams judged again as aliases and the access file change
        self.access = AccessWatch(
            lambda name: self.gate.holder.readers.identity(name),
            self.aliases,
            settings.query_index_prefix,
            clock,
            settings.tailor_access_recheck,
            on_refused=lambda: self.metrics.inc("reader_refusals_total", reason="access_recheck"),
        )
        self.resolver = Resolver(
            wamp,
            hub,
            clock,
            settings.engine_timeout + 5.0,
            settings.retry_after,
            ExpiringSet(settings.unknown_sid_ttl, settings.unknown_sid_cache, clock.seconds),
            lambda outcome: self.metrics.inc("sid_lookups_total", outcome=outcome),
        )
        self.backfill = Backfill(
            engine, BackfillBudget(settings.tailor_backfill_total), settings.tailor_backfill_buffer
        )
        self._cors = settings.cors_origins()
        self.count_history = CountHistory(engine)
        self.counters = Counters(hub, clock)
        self.streams: set[ClientStream] = set()
        self.count_streams: set[CountStream] = set()
        self.metrics = build_metrics([self])
        self._stats = _Stats(self.metrics)
        self.metrics.registry.register(CountSeries(self.counters))
        hub.on_delivered = lambda seconds: self.metrics.observe("delivery_seconds", seconds)

    def site(self) -> Site:
        return TailSite(
            self.routes(),
            self.settings.tailor_send_buffer,
            timeout=self.settings.tailor_idle_timeout,
            on_timeout=lambda: self.metrics.inc("connections_timed_out_total"),
        )

    def routes(self) -> Routes:
        """The tailor's resource: what ``site`` serves, and what in-memory tests request."""
        return Routes(
            {
                ("GET", (*API, "docs")): self.docs,
                ("GET", (*API, "counts")): self.counts,
                ("GET", ("healthz",)): self.healthz,
                ("GET", ("metrics",)): self.metrics_page,
            }
        )

    # -- the request around a stream -------------------------------------

    async def docs(self, request: Request, rest: list[str]) -> None:
        await self._serve(request, self._tail)

    async def _serve(
        self, request: Request, handler: Callable[[Request, RequestWatch], Awaitable[None]]
    ) -> None:
        """Run a streaming handler; cancel its work should the client go away before it starts."""
        watch = RequestWatch(request)  # now, before anything can be awaited
        self._allow_origin(request)
        work = ensureDeferred(handler(request, watch))
        watch.on_gone(work.cancel)  # a no-op once the stream started
        try:
            await work
        except CancelledError:
            if not watch.gone:
                raise
            self.metrics.inc("requests_cancelled_total")
            log.debug("request.cancelled", path=request.path.decode("utf-8", "replace"))
        except HTTPError as err:
            self.metrics.inc("requests_failed_total", status=str(err.status))
            if err.status in (401, 403, 429):
                self.metrics.inc("reader_refusals_total", reason=str(err.extra.get("limit", err.code)))
            raise

    def _allow_origin(self, request: Request) -> None:
        """Pages served elsewhere (the router's, on another port) tail with EventSource: the
        origins allowed, by name (the asking page's if listed, else the first), or ``*``."""
        if not self._cors:
            return
        if "*" in self._cors:
            request.setHeader(b"access-control-allow-origin", b"*")
            return
        asked = (request.getHeader(b"origin") or b"").decode("latin-1").strip().rstrip("/")
        allowed = asked if asked in self._cors else self._cors[0]
        request.setHeader(b"access-control-allow-origin", allowed.encode("latin-1", "replace"))
        request.setHeader(b"vary", b"Origin")

    # -- readers: who asks, may they read it, how much ----------

    async def _resolve_for_reader(
        self, request: Request, sid: str | None, index: str | None, query: Any
    ) -> tuple[Resolved, Identity]:
        """401/403/429 before anything is resolved (``i=``), 404 after (``s=`` of an unreadable
        sid); the caller's slot is held until the request finishes, and what resolving sends
        on (registrations, lookups) is charged to it."""
        gate = self.gate
        identity = gate.identify(request, (_args(request).get("token") or [None])[-1])
        if index is not None:
            gate.check(identity, index)
            await self._check_aliases(identity, index)
        key = gate.key(identity, request)
        gate.hold_tail(key)
        released = False

        def release(_: Any = None) -> None:
            nonlocal released
            if not released:
                released = True
                gate.release_tail(key)

        try:
            target = await self.resolver.resolve(sid, index, query, gate.charges(key))
            if sid is not None:
                gate.check(identity, target.index, as_missing_sid=sid)
                await self._check_aliases(identity, target.index, as_missing_sid=sid)
        except BaseException:
            release()
            raise
        request.notifyFinish().addBoth(release)
        return target, identity

    async def _check_aliases(
        self, identity: Identity, target: str, as_missing_sid: str | None = None
    ) -> None:
        """The indices behind every alias ``target`` covers must be the reader's too (403, or 404)."""
        try:
            behind = await self.aliases(target, self.settings.query_index_prefix)
        except EngineUnavailable as exc:
            raise self.resolver.unavailable(str(exc)) from None
        except EngineRejected as exc:
            raise HTTPError(400, "invalid_index", exc.reason) from None
        if not behind:
            return
        try:
            self.gate.check(identity, ",".join(behind), as_missing_sid=as_missing_sid)
        except HTTPError as refused:
            if refused.status != 403:
                raise
            # Not naming the indices behind: they are what the reader may not know of.
            raise HTTPError(
                403,
                "not_authorized",
                f"{target!r} leads through aliases to indices {identity.name} may not read",
            ) from None

    # -- GET /api/v0.1/docs ----------------------------------------------

    async def _tail(self, request: Request, watch: RequestWatch) -> None:
        tail = self._parse_tail(request)
        target, reader = await self._resolve_for_reader(request, tail.sid, tail.index, tail.query)
        stream = self._new_stream(request, watch, tail, target.sid)
        self.access.watch(stream, reader.name, target.index)
        try:
            sub = await self._join(stream, target, history=tail.format == "sse")
            joined_at = sub.last_seq
            resume = sub.resume(tail.last_event_id) if tail.last_event_id else None
            backfill = await self._backfill(target, tail.backfill) if resume is None else None
        except BaseException:
            self._abandon(target.sid, stream)
            raise
        self.metrics.inc("streams_total", format=tail.format)
        log.debug("stream.start", sid=target.sid, stream_format=tail.format, backfill=tail.backfill)
        stream.start(target.sid, sub.event_id, backfill or (), sub.event_id(joined_at), resume)

    def _parse_tail(self, request: Request) -> TailRequest:
        last_event_id = request.getHeader(b"last-event-id")
        try:
            return parse_tail_request(
                _args(request),
                last_event_id.decode("utf-8", "replace") if last_event_id else None,
                self.settings.tailor_max_backfill,
                self.settings.query_limits(),
            )
        except BadParameter as exc:
            raise HTTPError(400, exc.code, exc.reason) from None

    def _new_stream(self, request: Request, watch: RequestWatch, tail: TailRequest, sid: str) -> ClientStream:
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
            watch=watch,
            backfill_stall=self.settings.tailor_backfill_stall,
        )
        self.streams.add(stream)
        return stream

    async def _join(self, listener: Listener, target: Resolved, history: bool) -> SharedSubscription:
        """The sid's shared subscription, confirmed by the router; live hits are held from here on."""
        try:
            sub = await self.hub.join(target.sid, listener, history=history)
        except (RouterUnavailable, SubscribeFailed) as exc:
            raise self.resolver.unavailable(str(exc)) from None
        sub.described = (target.index, target.query)
        return sub

    async def _backfill(self, target: Resolved, size: int) -> BackfillPages | None:
        """The backfill's first page, the rest to come as the client reads; None without ``n=``."""
        if size <= 0:
            return None
        try:
            own = self.settings.query_index_prefix  # stored queries are never a backfill's
            return await self.backfill.open(searchable(target.index, own), target.query, size)
        except EngineUnavailable as exc:
            raise self.resolver.unavailable(str(exc)) from None
        except EngineRejected as exc:
            raise HTTPError(400, "invalid_query", f"backfill search refused: {exc.reason}") from None

    def _abandon(self, sid: str, stream: ClientStream) -> None:
        self.streams.discard(stream)
        self.access.forget(stream)
        self.hub.leave(sid, stream)
        stream.abandon()

    def _stream_gone(self, sid: str, linger: bool) -> Callable[[ClientStream], None]:
        def gone(stream: ClientStream) -> None:
            self.streams.discard(stream)
            self.access.forget(stream)
            self.hub.leave(sid, stream, linger=linger)

        return gone

    def close_all(self, error: str, reason: str) -> None:
        """End every stream with an error (router lost, shutting down)."""
        for stream in list(self.streams):
            stream.fail(error, reason)
        for count_stream in list(self.count_streams):
            count_stream.fail(error, reason)

    # -- GET /api/v0.1/counts --------------------------------------------

    async def counts(self, request: Request, rest: list[str]) -> None:
        await self._serve(request, self._count)

    async def _count(self, request: Request, watch: RequestWatch) -> None:
        ask = self._parse_counts(request)
        target, reader = await self._resolve_for_reader(request, ask.sid, ask.index, ask.query)
        stream = self._new_count_stream(request, watch, ask, target.sid)
        self.access.watch(stream, reader.name, target.index)
        try:
            await self._attach(stream, target, ask)
            history = await self._history(target, ask) if ask.since else None
        except BaseException:
            self._abandon_count(target.sid, ask, stream)
            raise
        self.metrics.inc("count_streams_total", format=ask.format)
        log.debug("counts.start", sid=target.sid, by=ask.by, every=ask.every, since=ask.since)
        if history is None:
            stream.start(target.sid, window_start(self.clock.seconds(), ask.every))
        else:
            stream.start(target.sid, history.current, history.windows, history.seed, history.recent)

    def _parse_counts(self, request: Request) -> CountRequest:
        try:
            return parse_count_request(_args(request), self.settings.query_limits())
        except BadParameter as exc:
            raise HTTPError(400, exc.code, exc.reason) from None

    def _new_count_stream(
        self, request: Request, watch: RequestWatch, ask: CountRequest, sid: str
    ) -> CountStream:
        def gone(stream: CountStream) -> None:
            self.count_streams.discard(stream)
            self.access.forget(stream)
            self.counters.detach(sid, ask.by, ask.every, stream)

        stream = CountStream(
            request,
            watch,
            count_framing_for(ask.format),
            self.clock,
            by=ask.by,
            k=ask.k,
            limit=ask.limit,
            timeout=ask.timeout,
            heartbeat=self.settings.tailor_heartbeat,
            max_pending=self.settings.tailor_max_pending,
            on_gone=gone,
        )
        self.count_streams.add(stream)
        return stream

    async def _attach(self, stream: CountStream, target: Resolved, ask: CountRequest) -> SharedSubscription:
        """The stream's shared counter, subscribed: from here on its hits are held for it."""
        try:
            sub = await self.counters.attach(target.sid, ask.by, ask.every, stream)
        except (RouterUnavailable, SubscribeFailed) as exc:
            raise self.resolver.unavailable(str(exc)) from None
        sub.described = (target.index, target.query)
        return sub

    async def _history(self, target: Resolved, ask: CountRequest) -> History:
        now = self.clock.seconds()
        try:
            return await self.count_history.fetch(
                searchable(target.index, self.settings.query_index_prefix),
                target.query,
                ask.by,
                ask.every,
                ask.k,
                start=window_start(now - ask.since, ask.every),
                end=now,
                current=window_start(now, ask.every),
            )
        except EngineUnavailable as exc:
            raise self.resolver.unavailable(str(exc)) from None
        except EngineRejected as exc:
            raise HTTPError(400, "invalid_query", f"counting search refused: {exc.reason}") from None

    def _abandon_count(self, sid: str, ask: CountRequest, stream: CountStream) -> None:
        self.count_streams.discard(stream)
        self.access.forget(stream)
        self.counters.detach(sid, ask.by, ask.every, stream)
        stream.abandon()

    async def healthz(self, request: Request, rest: list[str]) -> None:
        await write_health(request, self.engine, self.wamp)

    async def metrics_page(self, request: Request, rest: list[str]) -> None:
        write_metrics(request, self.metrics)


def _args(request: Request) -> dict[str, list[str]]:
    """The query arguments, decoded (undecodable bytes become U+FFFD and fail validation)."""
    return {
        k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
        for k, vs in request.args.items()
    }
