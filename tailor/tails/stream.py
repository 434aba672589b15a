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

A backfill (``n=``) is written a page at a time (tailor/backfill/pages.py): the
next page is fetched only once the client has taken the last one, and live
hits are held behind it meanwhile (at most ``max_pending`` bytes of them).
A client that leaves a page unread for ``backfill_stall`` seconds, or lets
more live hits than that pile up behind its backfill, is dropped as a slow
reader, its document closed with an ``"error"`` saying why.

A tail with ``max_rate=`` samples the live hits it frames, never the backfill
(tailor/views/sampling.py), and says in the stream which seconds it sampled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request

from common.config import Settings
from common.contract import SLOW_READER
from common.hits import Hit
from tailor.backfill.handover import Deduper
from tailor.backfill.pages import BackfillPages
from tailor.streaming.format import Framing, hit_json
from tailor.streaming.paced_response import PacedResponse, State
from tailor.streaming.request_watch import RequestWatch
from tailor.subscriptions.resume import Resume, SequencedHit
from tailor.tails.backfill_feed import BackfillFeed
from tailor.views.sampling import RateSampler, SampledSecond, TailSampling

log = Logger()


class StreamStats:
    """Counters a stream reports to; the app wires them to /metrics."""

    def hits_sent(self, n: int) -> None: ...

    def sampled_out(self, n: int) -> None: ...

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
        backfill_stall: float = 60.0,
        handover_window: float = Settings.tailor_handover,
        sampler: RateSampler[SequencedHit] | None = None,
        close_grace: float = Settings.tailor_close_grace,
    ) -> None:
        super().__init__(
            request, framing, clock, heartbeat=heartbeat, max_pending=max_pending, close_grace=close_grace
        )
        #: how long after the backfill live hits are checked against it (longer by a view's delay)
        self.handover_window = handover_window
        self.framing: Framing = framing
        self.limit = limit
        self.timeout = timeout
        self.stats = stats
        self.on_gone = on_gone
        self.end: str | None = None
        self.sent = 0  # hits framed for this client
        self._reports = 0  # sampled seconds said: elements of the JSON array, as hits are
        self._sampling = (
            TailSampling(sampler, clock, self._send_live, self._sampled, stats.sampled_out)
            if sampler is not None
            else None
        )
        self._closing = False
        self.event_id: Callable[[int], str] = str
        self._held: list[SequencedHit] = []
        self._held_bytes = 0
        # What the start (backfill) left unsent: not the client's fault, so
        # it may drain on top of the bound.
        self._allowance = 0
        self._deduper: Deduper | None = None
        self._end_reason = "fell more than the bound behind while the stream was being set up"
        # A backfill read page by page, as the client takes its pages.
        self._feed = BackfillFeed(self, clock, backfill_stall)
        self._backfilling = False  # live hits wait behind the backfill
        self._backfill_event_id = ""
        self._held_gaps: list[tuple[int, dict[str, Any]]] = []  # (position in _held, gap)
        # The watch was made when the request arrived: it knows if the
        # client left while its query was resolved.
        watch.on_gone(self._connection_done)

    # -- listener side -------------------------------------------------

    def deliver(self, entries: Sequence[SequencedHit]) -> None:
        if self.state is State.STREAMING and self._backfilling:
            self._held.extend(entries)
            self._held_bytes += sum(len(hit_json(hit)) for _, hit in entries)
            if self._held_bytes > self.max_pending:
                self.drop_slow_reader(
                    f"more than {self.max_pending} bytes of live hits waited behind the backfill "
                    "the client was reading; dropped (read faster, or ask for a smaller n=)",
                    "slow_reader",
                )
            return
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
                self.end = SLOW_READER
            return
        if self.state is State.STREAMING:
            # Judged once per event, on what earlier events left unsent: one
            # event (a beater batch) may be bigger than the bound and still be
            # read in time by a client that keeps up.
            if self.pending_bytes > self.max_pending + self._allowance:
                self.drop_slow_reader()
                return
            sampling = self._sampling
            if sampling is not None:
                sampling.begin()  # the second before: its sample and its report go first
            fresh: list[SequencedHit] = []
            for entry in entries:
                if self._deduper is not None:
                    if self._deduper.seen(entry[1]):
                        continue
                    if self._deduper.exhausted:
                        self._deduper = None
                if sampling is None or sampling.offer(entry):
                    fresh.append(entry)
            self._send_live(fresh)

    def _send_live(self, entries: Sequence[SequencedHit]) -> None:
        """Frame live hits up to ``limit``; one write for all: the fan-out costs a few byte joins
        per client, the JSON was encoded once for all."""
        if self.state is not State.STREAMING:
            return
        frames: list[bytes] = []
        for seq, hit in entries:
            if self.limit is not None and self.sent >= self.limit:
                break
            frames.append(self.framing.hit(hit, self.event_id(seq), first=self.sent + self._reports == 0))
            self.sent += 1
        if frames:  # hits only: a sampled second's report is written on its own
            self._emit(b"".join(frames))
            self.stats.hits_sent(len(frames))
        if self.limit is not None and self.sent >= self.limit and not self._closing:
            self.close("limit")

    @property
    def bridges_gaps(self) -> bool:
        return self.state is State.STREAMING and self.framing.gaps

    def gap(self, info: dict[str, Any]) -> None:
        if self.state is State.STREAMING:
            if self._backfilling:  # in its place among the held hits
                self._held_gaps.append((len(self._held), info))
                return
            self._emit(self.framing.gap(info))

    def fail(self, error: str, reason: str) -> None:
        if self.state is State.HOLDING:
            self.end, self._end_reason = error, reason
            return
        self.close("error", error, reason)

    def _sampled(self, second: SampledSecond) -> None:
        """A second that left hits out, said in its place in the stream."""
        if self.state is State.STREAMING:
            self._emit(self.framing.sampled(second.frame(), first=self.sent + self._reports == 0))
            self._reports += 1

    def close(self, end: str, error: str | None = None, reason: str | None = None) -> None:
        """End the document; a sampled tail's current second (its sample, its report) goes first."""
        if self.state is State.STREAMING and self._sampling is not None and not self._closing:
            self._closing = True
            self._sampling.flush()
        super().close(end, error, reason)

    # -- start ---------------------------------------------------------

    def start(
        self,
        sid: str,
        event_id: Callable[[int], str],
        backfill: Sequence[Hit] | BackfillPages = (),
        backfill_event_id: str = "",
        resume: Resume | None = None,
    ) -> None:
        """Write the status, headers and opening, then backfill, replay and held hits."""
        pages = backfill if isinstance(backfill, BackfillPages) else None
        if self._gone or self.state is not State.HOLDING:
            if pages is not None:
                pages.close()
            return
        self.event_id = event_id
        self._feed.pages = pages
        self._open()
        failed_while_holding, self.end = self.end, None
        self._emit(self.framing.opening(sid))
        if failed_while_holding is not None:
            if failed_while_holding == SLOW_READER:
                self.stats.dropped("slow_reader")
            self.close("error", failed_while_holding, self._end_reason)
            return
        if resume is not None:
            if resume.gap is not None:
                self._emit(self.framing.gap(resume.gap))
            self._held = [*resume.replay, *self._held]
        first = backfill.first if isinstance(backfill, BackfillPages) else list(backfill)
        if pages is not None:
            pages.first = []  # the stream holds the page now, and lets go of it once written
        self._start_timers(self.timeout)
        if not first and (pages is None or pages.done):
            self.end_backfill()
            return
        # Live hits held so far, and those arriving while the backfill is read,
        # wait behind it, up to the bound.
        self._backfilling = True
        self._held_bytes = sum(len(hit_json(hit)) for _, hit in self._held)
        self._deduper = Deduper()
        self._backfill_event_id = backfill_event_id
        self.send_page(first)
        del first
        # _open() and _send_page() move self.state on: mypy keeps the narrowing from the guard above.
        if self.state is State.STREAMING:  # type: ignore[comparison-overlap]
            self._feed.pump()

    # -- the backfill, page by page (tailor/tails/backfill_feed.py) -------

    @property
    def streaming(self) -> bool:
        return self.state is State.STREAMING

    @property
    def reading_backfill(self) -> bool:
        return self.state is State.STREAMING and self._backfilling

    @property
    def client_busy(self) -> bool:
        return self._paused or bool(self._pending)

    def send_page(self, hits: list[Hit]) -> None:
        frames: list[bytes] = []
        deduper = self._deduper
        for hit in hits:
            if self.limit is not None and self.sent + len(frames) >= self.limit:
                break
            if deduper is not None:
                deduper.add(hit)
            frames.append(self.framing.hit(hit, self._backfill_event_id, first=self.sent + len(frames) == 0))
        hits.clear()  # the encoded frames are all that is held from here on
        size = sum(len(f) for f in frames)
        self._feed.framed(size, len(frames))
        if frames:
            self.sent += len(frames)
            self._emit(b"".join(frames))
            self.stats.hits_sent(len(frames))
        if self.limit is not None and self.sent >= self.limit:
            self.close("limit")

    def end_backfill(self) -> None:
        """The backfill is written: the live hits held behind it follow, checked against it."""
        self._backfilling = False
        held, self._held = self._held, []
        gaps, self._held_gaps = self._held_gaps, []
        self._held_bytes = 0
        if self._deduper is not None:
            self._timers.append(self.clock.callLater(self.handover_window, self._end_handover))
        self._allowance = self.pending_bytes
        done = 0
        for position, info in gaps:
            self.deliver(held[done:position])
            done = position
            if self.state is not State.STREAMING:
                return
            self._emit(self.framing.gap(info))
        self.deliver(held[done:])
        if self.state is State.STREAMING and self.limit is not None and self.sent >= self.limit:
            self.close("limit")

    def _end_handover(self) -> None:
        self._deduper = None
        self._feed.handover_over()

    def _drained(self) -> None:
        self._allowance = 0
        self._feed.drained()

    def _close_pages(self) -> None:
        self._backfilling = False
        self._feed.close()

    # -- ending --------------------------------------------------------

    def _ended(self, end: str, error: str | None) -> None:
        self.end = end if error is None else error
        self.stats.ended(self.end)
        self._close_pages()

    def drop_slow_reader(self, reason: str | None = None, why: str = "slow_reader") -> None:
        """Discard what the client has not taken and end its document with an error."""
        dropped_bytes = self.pending_bytes
        self.stats.dropped(why)
        log.info("client.dropped", reason=why, pending_bytes=dropped_bytes, hits_sent=self.sent)
        reason = reason or (
            f"client fell more than {self.max_pending} bytes behind the stream; dropped "
            "(read faster, or narrow the query)"
        )
        self._close_pages()
        self.end = SLOW_READER
        self.stats.ended(SLOW_READER)
        transport = self.request.transport
        self._close_now(SLOW_READER, reason)  # forgets the channel
        if transport is not None:
            transport.loseConnection()
            # A TCP (or TLS) transport: ITransport does not declare abortConnection, ITCPTransport does.
            self._timers.append(
                self.clock.callLater(self.close_grace, transport.abortConnection)  # type: ignore[attr-defined]
            )

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
        self._held_gaps.clear()
        self._deduper = None
        self._close_pages()
        on_gone, self.on_gone = self.on_gone, _noop
        on_gone(self)


def _noop(_stream: ClientStream) -> None:
    return None
