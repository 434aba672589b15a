"""``GET /api/v0.1/counts``: a count request checked, resolved, attached to its shared counter, then streamed.

As a tail is (the way both share: tailor/http/endpoint.py): every failure up
to the start is a plain JSON error; ``since=`` counts the past period in the engine
(tailor/counts/history.py) once the stream's counter holds the live hits.
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
from tailor.counts.counting import window_start
from tailor.counts.delayed_stream import DelayedCountStream
from tailor.counts.history import CountHistory, History
from tailor.counts.stream import Counters, CountStream
from tailor.http.endpoint import StreamEndpoint
from tailor.queries.params import CountRequest, parse_count_request, query_args
from tailor.queries.resolve import Resolved, Resolver
from tailor.readers.access_watch import AccessWatch
from tailor.readers.admission import ReaderAdmission
from tailor.streaming.format import count_framing_for
from tailor.streaming.request_watch import RequestWatch
from tailor.subscriptions.shared import SharedSubscription

log = Logger()


@dataclass(eq=False)
class CountEndpoint(StreamEndpoint[CountRequest, CountStream]):
    """The count streams of this tailor: each request's way to its stream, and the streams open."""

    started_total: ClassVar[str] = "count_streams_total"
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

    def _parse(self, request: Request) -> CountRequest:
        return parse_count_request(
            query_args(request), self.settings.query_limits(), self.settings.tailor_max_delay
        )

    def _new_stream(self, request: Request, watch: RequestWatch, ask: CountRequest, sid: str) -> CountStream:
        kind = DelayedCountStream if ask.delay else CountStream
        return kind(
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
            on_gone=self._on_gone(sid, ask),
            handover_window=self.settings.tailor_handover + ask.delay,
            close_grace=self.settings.tailor_close_grace,
        )

    async def _prepare(self, stream: CountStream, target: Resolved, ask: CountRequest) -> Callable[[], None]:
        """Attached, then with ``since=`` the past windows counted: they open the stream."""
        await self._attach(stream, target, ask)
        history = await self._history(target, ask) if ask.since else None

        def start() -> None:
            log.debug(
                "counts.start", sid=target.sid, by=ask.by, every=ask.every, since=ask.since, delay=ask.delay
            )
            if history is None:
                stream.start(target.sid, window_start(self.clock.seconds(), ask.every))
            else:
                stream.start(target.sid, history.current, history)

        return start

    async def _attach(self, stream: CountStream, target: Resolved, ask: CountRequest) -> SharedSubscription:
        """The stream's shared counter, subscribed: from here on its hits are held for it."""
        counters = self.counters
        if isinstance(stream, DelayedCountStream):
            attached = counters.attach_delayed(target.sid, ask.by, ask.every, ask.delay, stream)
        else:
            attached = counters.attach(target.sid, ask.by, ask.every, stream)
        return await self.resolver.subscribed(target, attached)

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
                # with delay=, documents stamped that much earlier may still arrive on time
                recent=self.settings.tailor_handover + ask.delay,
            )
        except EngineRejected as exc:  # EngineUnavailable, a RetryLater, is the HTTP face's: 503
            raise HTTPError.of(INVALID_QUERY, f"counting search refused: {exc.reason}") from None

    def _leave(self, sid: str, ask: CountRequest, stream: CountStream, *, abandoned: bool) -> None:
        self.counters.detach(sid, ask.by, ask.every, stream, delay=ask.delay)
