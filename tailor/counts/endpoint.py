"""``GET /api/v0.1/counts``: a count request checked, resolved, attached to its shared counter, then streamed.

As a tail is (tailor/tails/endpoint.py): every failure up to the start is a
plain JSON error; ``since=`` counts the past period in the engine
(tailor/counts/history.py) once the stream's counter holds the live hits.
"""

from __future__ import annotations

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
from tailor.counts.counting import window_start
from tailor.counts.history import CountHistory, History
from tailor.counts.stream import Counters, CountStream
from tailor.queries.params import BadParameter, CountRequest, parse_count_request, query_args
from tailor.queries.resolve import Resolved, Resolver
from tailor.readers.access_watch import AccessWatch
from tailor.readers.admission import ReaderAdmission
from tailor.streaming.format import count_framing_for
from tailor.streaming.request_watch import RequestWatch
from tailor.subscriptions.shared import SharedSubscription

log = Logger()


@dataclass(eq=False)
class CountEndpoint:
    """The count streams of this tailor: each request's way to its stream, and the streams open."""

    settings: Settings
    clock: IReactorTime
    counters: Counters
    history: CountHistory
    admission: ReaderAdmission
    resolver: Resolver
    access: AccessWatch
    metrics: Metrics
    #: the count streams open now
    streams: set[CountStream] = field(default_factory=set)

    async def handle(self, request: Request, watch: RequestWatch) -> None:
        ask = self._parse(request)
        target, reader = await self.admission.resolve(request, ask.sid, ask.index, ask.query)
        stream = self._new_stream(request, watch, ask, target.sid)
        self.access.watch(stream, reader.name, target.index)
        try:
            await self._attach(stream, target, ask)
            history = await self._history(target, ask) if ask.since else None
        except BaseException:
            self._abandon(target.sid, ask, stream)
            raise
        self.metrics.inc("count_streams_total", format=ask.format)
        log.debug("counts.start", sid=target.sid, by=ask.by, every=ask.every, since=ask.since)
        if history is None:
            stream.start(target.sid, window_start(self.clock.seconds(), ask.every))
        else:
            stream.start(target.sid, history.current, history.windows, history.seed, history.recent)

    def _parse(self, request: Request) -> CountRequest:
        try:
            return parse_count_request(query_args(request), self.settings.query_limits())
        except BadParameter as exc:
            raise HTTPError.of(exc.error, exc.reason) from None

    def _new_stream(self, request: Request, watch: RequestWatch, ask: CountRequest, sid: str) -> CountStream:
        def gone(stream: CountStream) -> None:
            self.streams.discard(stream)
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
        self.streams.add(stream)
        return stream

    async def _attach(self, stream: CountStream, target: Resolved, ask: CountRequest) -> SharedSubscription:
        """The stream's shared counter, subscribed: from here on its hits are held for it."""
        return await self.resolver.subscribed(
            target, self.counters.attach(target.sid, ask.by, ask.every, stream)
        )

    async def _history(self, target: Resolved, ask: CountRequest) -> History:
        now = self.clock.seconds()
        try:
            return await self.history.fetch(
                searchable(target.index, self.settings.query_index_prefix),
                target.query,
                ask.by,
                ask.every,
                ask.k,
                start=window_start(now - ask.since, ask.every),
                end=now,
                current=window_start(now, ask.every),
            )
        except EngineRejected as exc:  # EngineUnavailable, a RetryLater, is the HTTP face's: 503
            raise HTTPError.of(INVALID_QUERY, f"counting search refused: {exc.reason}") from None

    def _abandon(self, sid: str, ask: CountRequest, stream: CountStream) -> None:
        self.streams.discard(stream)
        self.access.forget(stream)
        self.counters.detach(sid, ask.by, ask.every, stream)
        stream.abandon()
