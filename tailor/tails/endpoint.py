"""``GET /api/v0.1/docs``: a tail request checked, resolved, joined, backfilled, then streamed.

A tail request is checked (tailor/queries/params.py), resolved to a sid for
its reader (tailor/readers/admission.py: register or describe over WAMP,
tailor/queries/resolve.py), joined to the sid's shared subscription (with
``fields=`` or ``delay=``, to the shared view of its shape there,
tailor/views/view.py), backfilled, and only then answered 200: every
failure up to that point is a plain JSON error (400/404/503); after it,
failures end the document with an ``"error"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request

from common.access.readers import searchable
from common.config import Settings
from common.contract import INVALID_QUERY
from common.engine import EngineRejected
from common.http import HTTPError
from common.metrics import Metrics
from tailor.backfill.pages import Backfill, BackfillPages
from tailor.http.endpoint import StreamEndpoint
from tailor.queries.params import TailRequest, parse_tail_request, query_args
from tailor.queries.resolve import Resolved, Resolver
from tailor.readers.access_watch import AccessWatch
from tailor.readers.admission import ReaderAdmission
from tailor.streaming.format import framing_for
from tailor.streaming.request_watch import RequestWatch
from tailor.subscriptions.partitioned import PartitionedHub
from tailor.subscriptions.shared import Fanout
from tailor.tails.stream import ClientStream, StreamStats
from tailor.views.sampling import RateSampler
from tailor.views.view import Views, ViewShape

log = Logger()


@dataclass(eq=False)
class TailEndpoint(StreamEndpoint[TailRequest, ClientStream]):
    """The tails of this tailor: each request's way to its stream, and the streams open."""

    started_total: ClassVar[str] = "streams_total"
    settings: Settings
    clock: IReactorTime
    hub: PartitionedHub
    admission: ReaderAdmission
    resolver: Resolver
    backfill: Backfill
    access: AccessWatch
    metrics: Metrics
    stats: StreamStats
    #: the shared views of tails that ask for fields or a delay
    views: Views
    #: the tails open now
    streams: set[ClientStream] = field(default_factory=set)

    def _parse(self, request: Request) -> TailRequest:
        last_event_id = request.getHeader(b"last-event-id")
        return parse_tail_request(
            query_args(request),
            last_event_id.decode("utf-8", "replace") if last_event_id else None,
            self.settings.tailor_max_backfill,
            self.settings.query_limits(),
            self.settings.tailor_max_delay,
        )

    def _new_stream(self, request: Request, watch: RequestWatch, tail: TailRequest, sid: str) -> ClientStream:
        return ClientStream(
            request,
            framing_for(tail.format),
            self.clock,
            limit=tail.limit,
            timeout=tail.timeout,
            heartbeat=self.settings.tailor_heartbeat,
            max_pending=self.settings.tailor_max_pending,
            stats=self.stats,
            on_gone=self._on_gone(sid, tail),
            watch=watch,
            backfill_stall=self.settings.tailor_backfill_stall,
            # A document stored around the backfill's search may reach the tail a delay later.
            handover_window=self.settings.tailor_handover + tail.delay,
            close_grace=self.settings.tailor_close_grace,
            sampler=RateSampler(tail.max_rate) if tail.max_rate is not None else None,
        )

    async def _prepare(self, stream: ClientStream, target: Resolved, tail: TailRequest) -> Callable[[], None]:
        """Joined, then the hand-over planned: a resume from the SSE history, or else the backfill."""
        sub = await self._join(stream, target, tail)
        joined_at = sub.last_seq
        resume = sub.resume(tail.last_event_id) if tail.last_event_id else None
        backfill = await self._backfill(target, tail.backfill, tail.fields) if resume is None else None

        def start() -> None:
            log.debug("stream.start", sid=target.sid, stream_format=tail.format, backfill=tail.backfill)
            stream.start(target.sid, sub.event_id, backfill or (), sub.event_id(joined_at), resume)

        return start

    async def _join(self, stream: ClientStream, target: Resolved, tail: TailRequest) -> Fanout:
        """What numbers the stream's live hits, once the router confirmed the sid: its shared
        subscription, or the shared view of its shape. Live hits are held from here on."""
        history = tail.format == "sse"
        shape = ViewShape.of(tail)
        if shape is None:
            return await self.resolver.subscribed(target, self.hub.join(target.sid, stream, history=history))
        view = self.views.enter(target.sid, shape, stream)
        await self.resolver.subscribed(target, view.when_joined())
        return view.receive(stream, history)  # in this turn: the caller plans its resume from it

    async def _backfill(
        self, target: Resolved, size: int, fields: tuple[str, ...] | None = None
    ) -> BackfillPages | None:
        """The backfill's first page, the rest to come as the client reads; None without ``n=``.
        Sources are cut to ``fields`` by the engine, as the live hits are by the tail's view."""
        if size <= 0:
            return None
        try:
            own = self.settings.query_index_prefix  # stored queries are never a backfill's
            return await self.backfill.open(searchable(target.index, own), target.query, size, fields)
        except EngineRejected as exc:  # EngineUnavailable, a RetryLater, is the HTTP face's: 503
            raise HTTPError.of(INVALID_QUERY, f"backfill search refused: {exc.reason}") from None

    def _leave(self, sid: str, tail: TailRequest, stream: ClientStream, *, abandoned: bool) -> None:
        """An SSE client's subscription lingers after it (its browser reconnects with Last-Event-ID),
        never after an HTTP error."""
        linger = tail.format == "sse" and not abandoned
        shape = ViewShape.of(tail)
        if shape is None:
            self.hub.leave(sid, stream, linger=linger)
        else:
            self.views.leave(sid, shape, stream, linger=linger)
