"""The tailor's HTTP face: ``GET /api/v0.1/docs``, ``/counts``, ``/healthz``, ``/metrics``.

Each streaming request is handed to its endpoint (tailor/tails/endpoint.py,
tailor/counts/endpoint.py), which checks, resolves and joins it before it
answers 200. A client that leaves before that cancels the work in flight.

Browsers: a page whose origin ``ESTROM_TAILOR_CORS_ORIGIN`` lists (by
default the router's page) may read tails and counts (EventSource); the
answer names that origin (``Vary: Origin``), or ``*`` when so configured.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request
from twisted.web.server import Site

from common.aliases import AliasLookup, alias_members
from common.config import Settings
from common.contract import UNAVAILABLE
from common.engine import Engine
from common.errors import RetryLater
from common.expiring_set import ExpiringSet
from common.http import HTTPError, Routes, write_health, write_metrics
from common.metrics import Metrics
from common.router_tier import RouterTier
from tailor.backfill.budget import BackfillBudget
from tailor.backfill.pages import Backfill
from tailor.counts.endpoint import CountEndpoint
from tailor.counts.history import CountHistory
from tailor.counts.metrics import CountSeries
from tailor.counts.stream import Counters, CountStream
from tailor.http.site import TailSite
from tailor.queries.resolve import Resolver
from tailor.readers.access_watch import AccessWatch
from tailor.readers.admission import ReaderAdmission
from tailor.readers.gate import ReaderGate, TopTails
from tailor.streaming.request_watch import RequestWatch
from tailor.subscriptions.partitioned import PartitionedHub
from tailor.tails.endpoint import TailEndpoint
from tailor.tails.stream import ClientStream, StreamStats
from tailor.views.view import Views, ViewStats

log = Logger()

API = ("api", "v0.1")


def build_metrics(api: TailorAPI) -> Metrics:
    """The tailor's /metrics; gauges read the live state."""
    m = Metrics("estrom_tailor_")
    m.gauge("clients", "Connected tail clients.", lambda: len(api.streams))
    m.gauge("subscriptions", "WAMP subscriptions (sids) held by this tailor.", lambda: len(api.hub))
    m.gauge("count_clients", "Connected count clients.", lambda: len(api.count_streams))
    m.gauge("counters", "Shared counters (sid, by, every) of this tailor.", lambda: len(api.counters))
    m.gauge(
        "pending_bytes",
        "Bytes waiting for slow clients, over all clients.",
        lambda: sum(s.pending_bytes for s in api.streams),
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
    m.gauge(
        "views",
        "Shared views (sid, fields, delay, order_by) of tails with fields= or delay=.",
        lambda: len(api.views),
    )
    m.gauge(
        "view_held_hits", "Hits held by views for delay= ordering, over all views.", lambda: api.views.held
    )
    m.gauge(
        "view_held_bytes",
        "Bytes of hits held by views for delay=, over all views.",
        lambda: api.views.held_bytes,
    )
    m.counter(
        "late_hits_total",
        "Hits released after one with a greater order_by value (sent, marked _late); once per view.",
    )
    m.counter(
        "view_early_releases_total",
        "Hits released before their delay was up: their view held over ESTROM_TAILOR_MAX_PENDING bytes.",
    )
    m.counter("sampled_out_total", "Hits left out by max_rate= sampling, over all tails.")
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
        lambda: api.backfill.budget.held,
    )
    m.gauge(
        "backfill_waiting",
        "Backfills waiting for room under ESTROM_TAILOR_BACKFILL_TOTAL.",
        lambda: api.backfill.budget.waiting,
    )
    m.gauge("backfills", "Backfills in progress.", lambda: len(api.backfill.open_pages))
    m.counter(
        "sid_lookups_total",
        "s= lookups: found, unknown (each a describe_query), remembered (answered 404 from memory).",
        labels=("outcome",),
    )
    m.gauge("unknown_sids", "Sids remembered as unknown.", lambda: len(api.resolver.unknown))
    m.counter(
        "connections_timed_out_total",
        "Connections cut for not sending a request's headers within ESTROM_TAILOR_IDLE_TIMEOUT.",
    )
    m.registry.register(TopTails(lambda: api.gate))  # readers: the largest users
    return m


class _Stats(StreamStats, ViewStats):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def hits_sent(self, n: int) -> None:
        self.metrics.inc("hits_sent_total", n)

    def sampled_out(self, n: int) -> None:
        self.metrics.inc("sampled_out_total", n)

    def dropped(self, reason: str) -> None:
        self.metrics.inc("clients_dropped_total", reason=reason)

    def ended(self, how: str) -> None:
        self.metrics.inc("streams_ended_total", how=how)

    def late(self, n: int) -> None:
        self.metrics.inc("late_hits_total", n)

    def early(self, n: int) -> None:
        self.metrics.inc("view_early_releases_total", n)


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
        wamp: RouterTier,
        hub: PartitionedHub,
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
            ExpiringSet(settings.unknown_sid_ttl, settings.unknown_sid_cache, clock.seconds),
            lambda outcome: self.metrics.inc("sid_lookups_total", outcome=outcome),
        )
        self.backfill = Backfill(
            engine, BackfillBudget(settings.tailor_backfill_total), settings.tailor_backfill_buffer
        )
        self._cors = settings.cors_origins()
        self.count_history = CountHistory(engine)
        self.counters = Counters(hub, clock)
        self.metrics = build_metrics(self)
        #: shared views of tails with fields= or delay=, each holding at most what one client may fall behind
        stats = _Stats(self.metrics)
        self.views = Views(hub, settings.tailor_max_pending, stats)
        self.metrics.registry.register(CountSeries(self.counters))
        hub.on_delivered = lambda seconds: self.metrics.observe("delivery_seconds", seconds)
        admission = ReaderAdmission(gate, self.aliases, self.resolver, settings.query_index_prefix)
        self.tail_endpoint = TailEndpoint(
            settings,
            clock,
            hub,
            admission,
            self.resolver,
            self.backfill,
            self.access,
            self.metrics,
            stats,
            self.views,
        )
        self.count_endpoint = CountEndpoint(
            settings,
            clock,
            self.counters,
            self.count_history,
            admission,
            self.resolver,
            self.access,
            self.metrics,
        )

    @property
    def streams(self) -> set[ClientStream]:
        """The tails open now."""
        return self.tail_endpoint.streams

    @property
    def count_streams(self) -> set[CountStream]:
        """The count streams open now."""
        return self.count_endpoint.streams

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
            },
            retry_after=self.settings.retry_after,
        )

    # -- the request around a stream -------------------------------------

    async def docs(self, request: Request, rest: list[str]) -> None:
        await self._serve(request, self.tail_endpoint.handle)

    async def counts(self, request: Request, rest: list[str]) -> None:
        await self._serve(request, self.count_endpoint.handle)

    async def _serve(
        self, request: Request, handler: Callable[[Request, RequestWatch], Coroutine[Any, Any, None]]
    ) -> None:
        """Run a streaming handler; cancel its work should the client go away before it starts."""
        watch = RequestWatch(request)  # now, before anything can be awaited
        self._allow_origin(request)
        work: Deferred[None] = ensureDeferred(handler(request, watch))
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
        except RetryLater:  # answered by Routes: 503 with Retry-After
            self.metrics.inc("requests_failed_total", status=str(UNAVAILABLE.status))
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

    def close_all(self, error: str, reason: str) -> None:
        """End every stream with an error (router lost, shutting down)."""
        for stream in list(self.streams):
            stream.fail(error, reason)
        for count_stream in list(self.count_streams):
            count_stream.fail(error, reason)

    async def healthz(self, request: Request, rest: list[str]) -> None:
        await write_health(request, self.engine, self.wamp)

    async def metrics_page(self, request: Request, rest: list[str]) -> None:
        write_metrics(request, self.metrics)
