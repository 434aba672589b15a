"""``GET /api/v0.1/docs``: a tail request checked, resolved, joined, backfilled, then streamed.

A tail request is checked (tailor/queries/params.py), resolved to a sid for
its reader (tailor/readers/admission.py: register or describe over WAMP,
tailor/queries/resolve.py), joined to the sid's shared subscription,
backfilled, and only then answered 200: every failure up to that point is a
plain JSON error (400/404/503); after it, failures end the document with an
``"error"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request

from common.config import Settings
from common.contract import INVALID_QUERY
from common.engine import EngineRejected
from common.http import HTTPError
from common.metrics import Metrics
from common.readers import searchable
from tailor.backfill.pages import Backfill, BackfillPages
from tailor.queries.params import BadParameter, TailRequest, parse_tail_request, query_args
from tailor.queries.resolve import Resolved, Resolver
from tailor.readers.access_watch import AccessWatch
from tailor.readers.admission import ReaderAdmission
from tailor.streaming.format import framing_for
from tailor.streaming.request_watch import RequestWatch
from tailor.subscriptions.hub import SubscriptionHub
from tailor.subscriptions.shared import Listener, SharedSubscription
from tailor.tails.stream import ClientStream, StreamStats

log = Logger()


@dataclass(eq=False)
class TailEndpoint:
    """The tails of this tailor: each request's way to its stream, and the streams open."""

    settings: Settings
    clock: IReactorTime
    hub: SubscriptionHub
    admission: ReaderAdmission
    resolver: Resolver
    backfill: Backfill
    access: AccessWatch
    metrics: Metrics
    stats: StreamStats
    #: the tails open now
    streams: set[ClientStream] = field(default_factory=set)

    async def handle(self, request: Request, watch: RequestWatch) -> None:
        tail = self._parse(request)
        target, reader = await self.admission.resolve(request, tail.sid, tail.index, tail.query)
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

    def _parse(self, request: Request) -> TailRequest:
        last_event_id = request.getHeader(b"last-event-id")
        try:
            return parse_tail_request(
                query_args(request),
                last_event_id.decode("utf-8", "replace") if last_event_id else None,
                self.settings.tailor_max_backfill,
                self.settings.query_limits(),
            )
        except BadParameter as exc:
            raise HTTPError.of(exc.error, exc.reason) from None

    def _new_stream(self, request: Request, watch: RequestWatch, tail: TailRequest, sid: str) -> ClientStream:
        stream = ClientStream(
            request,
            framing_for(tail.format),
            self.clock,
            limit=tail.limit,
            timeout=tail.timeout,
            heartbeat=self.settings.tailor_heartbeat,
            max_pending=self.settings.tailor_max_pending,
            stats=self.stats,
            on_gone=self._stream_gone(sid, linger=tail.format == "sse"),
            watch=watch,
            backfill_stall=self.settings.tailor_backfill_stall,
        )
        self.streams.add(stream)
        return stream

    async def _join(self, listener: Listener, target: Resolved, history: bool) -> SharedSubscription:
        """The sid's shared subscription, confirmed by the router; live hits are held from here on."""
        return await self.resolver.subscribed(target, self.hub.join(target.sid, listener, history=history))

    async def _backfill(self, target: Resolved, size: int) -> BackfillPages | None:
        """The backfill's first page, the rest to come as the client reads; None without ``n=``."""
        if size <= 0:
            return None
        try:
            own = self.settings.query_index_prefix  # stored queries are never a backfill's
            return await self.backfill.open(searchable(target.index, own), target.query, size)
        except EngineRejected as exc:  # EngineUnavailable, a RetryLater, is the HTTP face's: 503
            raise HTTPError.of(INVALID_QUERY, f"backfill search refused: {exc.reason}") from None

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
