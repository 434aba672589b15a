"""One client's tail: framing, flow control, heartbeat, limit, timeout and ending.

A ClientStream is a push producer registered on its request: when the
client's socket buffer fills, Twisted pauses it and its hits wait in a
bounded queue of frames; when that queue exceeds ``max_pending`` bytes, the
client is dropped with the document closed and an ``"error"`` saying so.
Other clients of the same sid never wait for it: fan-out only appends here.

Before the stream starts (while its subscription is confirmed and a backfill
runs) live hits are *held*, so that none is lost or repeated at the
hand-over; the response status and headers are only written at ``start``,
so errors up to then are still plain HTTP errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request

from common.hits import Hit
from tailor.backfill import Deduper
from tailor.paced_response import CLOSE_GRACE, PacedResponse, State
from tailor.request_watch import RequestWatch
from tailor.stream_format import Framing, hit_json
from tailor.subscriptions import Resume, SequencedHit

log = Logger()

#: How long after a backfill live hits are still checked against it: a sender
#: may store a document (searchable) a moment before its live hit arrives.
HANDOVER_WINDOW = 10.0


class StreamStats:
    """Counters a stream reports to; the app wires them to /metrics."""

    def hits_sent(self, n: int) -> None: ...

    def dropped(self, reason: str) -> None: ...

    def ended(self, how: str) -> None: ...


class ClientStream(PacedResponse):
    """The tail of one HTTP client; a listener of one shared subscription."""

    def __init__(
        self,
        request: Request,
        framing: Framing,
        clock: IReactorTime,
        *,
        limit: int | None,
        timeout: float | None,
        heartbeat: float,
        max_pending: int,
        stats: StreamStats,
        on_gone: Callable[[ClientStream], None],
        watch: RequestWatch,
    ) -> None:
        super().__init__(request, framing, clock, heartbeat=heartbeat, max_pending=max_pending)
        self.framing: Framing = framing
        self.limit = limit
        self.timeout = timeout
        self.stats = stats
        self.on_gone = on_gone
        self.end: str | None = None
        self.sent = 0  # hits framed for this client
        self.event_id: Callable[[int], str] = str
        self._held: list[SequencedHit] = []
        self._held_bytes = 0
        # What the start (backfill) left unsent: not the client's fault, so
        # it may drain on top of the bound.
        self._allowance = 0
        self._deduper: Deduper | None = None
        self._end_reason = "fell more than the bound behind while the stream was being set up"
        # The watch was made when the request arrived: it knows if the
        # client left while its query was resolved.
        watch.on_gone(self._connection_done)

    # -- listener side -------------------------------------------------

    def deliver(self, entries: Sequence[SequencedHit]) -> None:
        if self.state is State.HOLDING:
            if self.end is not None:
                return  # already failed; start() reports it
            self._held.extend(entries)
            self._held_bytes += sum(len(hit_json(hit)) for _, hit in entries)
            if self._held_bytes > self.max_pending:
                # Cannot happen for long (holding lasts one engine search);
                # bounded all the same.
                self._held.clear()
                self._held_bytes = 0
                self.end = "slow_reader"
            return
        if self.state is State.STREAMING:
            # Judged once per event, on what earlier events left unsent: one
            # event (a beater batch) may be bigger than the bound and still be
            # read in time by a client that keeps up.
            if self.pending_bytes > self.max_pending + self._allowance:
                self._drop_slow_reader()
                return
            # One write per event, not per hit: the fan-out costs a few
            # byte joins per client, the JSON was encoded once for all.
            frames: list[bytes] = []
            for seq, hit in entries:
                if self.limit is not None and self.sent >= self.limit:
                    break
                if self._deduper is not None:
                    if self._deduper.seen(hit):
                        continue
                    if self._deduper.exhausted:
                        self._deduper = None
                frames.append(self.framing.hit(hit, self.event_id(seq), first=self.sent == 0))
                self.sent += 1
            if frames:
                self._emit(b"".join(frames))
                self.stats.hits_sent(len(frames))
            if self.limit is not None and self.sent >= self.limit:
                self.close("limit")

    @property
    def bridges_gaps(self) -> bool:
        return self.state is State.STREAMING and self.framing.gaps

    def gap(self, info: dict[str, Any]) -> None:
        if self.state is State.STREAMING:
            self._emit(self.framing.gap(info))

    def fail(self, error: str, reason: str) -> None:
        if self.state is State.HOLDING:
            self.end, self._end_reason = error, reason
            return
        self.close("error", error, reason)

    # -- start ---------------------------------------------------------

    def start(
        self,
        sid: str,
        event_id: Callable[[int], str],
        backfill: Sequence[Hit] = (),
        backfill_event_id: str = "",
        resume: Resume | None = None,
    ) -> None:
        """Write the status, headers and opening, then backfill, replay and held hits."""
        if self._gone or self.state is not State.HOLDING:
            return
        self.event_id = event_id
        self._open()
        failed_while_holding, self.end = self.end, None
        self._emit(self.framing.opening(sid))
        if failed_while_holding is not None:
            if failed_while_holding == "slow_reader":
                self.stats.dropped("slow_reader")
            self.close("error", failed_while_holding, self._end_reason)
            return
        held, self._held = self._held, []
        if resume is not None:
            if resume.gap is not None:
                self._emit(self.framing.gap(resume.gap))
            held = [*resume.replay, *held]
        if backfill:
            self._deduper = Deduper(backfill)
            self._timers.append(self.clock.callLater(HANDOVER_WINDOW, self._end_handover))
            for hit in backfill:
                if self.state is not State.STREAMING:
                    return
                self._send_hit(hit, backfill_event_id)
        self._allowance = self.pending_bytes
        self.deliver(held)
        if self.state is not State.STREAMING:
            return
        if self.limit is not None and self.sent >= self.limit:
            self.close("limit")
            return
        self._start_timers(self.timeout)

    # -- writing -------------------------------------------------------

    def _send_hit(self, hit: Hit, event_id: str) -> None:
        if self.limit is not None and self.sent >= self.limit:
            return
        self._emit(self.framing.hit(hit, event_id, first=self.sent == 0))
        self.sent += 1
        self.stats.hits_sent(1)
        if self.limit is not None and self.sent >= self.limit:
            self.close("limit")

    def _end_handover(self) -> None:
        self._deduper = None

    def _drained(self) -> None:
        self._allowance = 0

    # -- ending --------------------------------------------------------

    def _ended(self, end: str, error: str | None) -> None:
        self.end = end if error is None else error
        self.stats.ended(self.end)

    def _drop_slow_reader(self) -> None:
        """Discard what the client has not taken and end its document with an error."""
        dropped_bytes = self.pending_bytes
        self.stats.dropped("slow_reader")
        log.info("client.dropped", reason="slow_reader", pending_bytes=dropped_bytes, hits_sent=self.sent)
        reason = (
            f"client fell more than {self.max_pending} bytes behind the stream; dropped "
            "(read faster, or narrow the query)"
        )
        self.end = "slow_reader"
        self.stats.ended("slow_reader")
        transport = self.request.transport
        self._close_now("slow_reader", reason)  # forgets the channel
        if transport is not None:
            transport.loseConnection()
            self._timers.append(self.clock.callLater(CLOSE_GRACE, transport.abortConnection))

    def abandon(self) -> None:
        """Never started (the request is answered with an HTTP error instead): let go quietly."""
        if self.state is State.HOLDING:
            self.state = State.CLOSED
            self._release()

    def _connection_done(self) -> None:
        """The response finished or the client went away: release everything at once."""
        if self.state is not State.CLOSED:
            self.stats.ended("client_gone")
        self._release()

    def _released(self) -> None:
        self._held.clear()
        on_gone, self.on_gone = self.on_gone, _noop
        on_gone(self)


def _noop(_stream: ClientStream) -> None:
    return None
