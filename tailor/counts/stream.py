"""Live counts over HTTP: one shared counter per (sid, by, every, delay), one stream per client.

Counting must cost next to nothing per viewer, so each hit is counted once
per tailor and key, by a ``SharedCounter`` that is the hub's listener of the
sid; at every window boundary it hands the closed window to its streams,
and each cuts its own top ``k``. A stream counts hits itself (*private*)
only while its counts cannot be the shared ones: its first, partial window
(it joined mid-window), and for ``since=`` the hand-over, while live hits
may still be documents the engine already counted (see tailor/counts/history.py).
With ``delay=`` windows are cut by ``@timestamp`` instead, by a ``DelayedCounter``
for ``DelayedCountStream``s (tailor/counts/delayed_counter.py, delayed_stream.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.http import Request

from common.config import Settings
from common.contract import SLOW_READER
from common.hits import Hit
from tailor.backfill.handover import Deduper
from tailor.counts.base import BaseCounter, WindowListener
from tailor.counts.counting import WindowCounts, frame, window_start
from tailor.counts.delayed_counter import DelayedCounter, DelayedListener, LateTally
from tailor.counts.history import History
from tailor.streaming.format import CountFraming
from tailor.streaming.paced_response import PacedResponse, State
from tailor.streaming.request_watch import RequestWatch
from tailor.subscriptions.partitioned import PartitionedHub
from tailor.subscriptions.resume import SequencedHit
from tailor.subscriptions.shared import SharedSubscription

#: How long a ``since=`` stream checks live hits against the documents the
#: engine had just counted (a sender may store a document before its hit arrives).


class CountStream(PacedResponse):
    """The count frames of one HTTP client."""

    def __init__(
        self,
        request: Request,
        watch: RequestWatch,
        framing: CountFraming,
        clock: IReactorTime,
        *,
        by: str | None,
        k: int,
        limit: int | None,
        timeout: float | None,
        heartbeat: float,
        max_pending: int,
        on_gone: Callable[[CountStream], None],
        handover_window: float = Settings.tailor_handover,
        close_grace: float = Settings.tailor_close_grace,
    ) -> None:
        super().__init__(
            request, framing, clock, heartbeat=heartbeat, max_pending=max_pending, close_grace=close_grace
        )
        #: how long after a ``since=`` history live hits are still checked against it
        self.handover_window = handover_window
        self.framing: CountFraming = framing
        self.by = by
        self.k = k
        self.limit = limit
        self.timeout = timeout
        self.on_gone = on_gone
        self.frames_sent = 0
        self.private = True
        self._held: list[Hit] = []
        #: Windows that closed while holding: (start, the hits held in it).
        self._held_windows: list[tuple[float, list[Hit]]] = []
        self._counts = WindowCounts(by)
        self._deduper: Deduper | None = None
        self._handover_until = 0.0
        self._failed: tuple[str, str] | None = None
        watch.on_gone(self._release)

    # -- from the shared counter -------------------------------------------

    def observe(self, hits: Sequence[Hit]) -> None:
        """Hits one by one, while this stream counts privately."""
        if self.state is State.HOLDING:
            self._held.extend(hits)
            return
        if self.state is State.STREAMING:
            self._count(hits)

    def _count(self, hits: Sequence[Hit]) -> None:
        deduper = self._deduper
        add = self._counts.add
        for hit in hits:
            if deduper is not None and deduper.seen(hit):
                continue  # already in the engine's counts of the past period
            add(hit.get("_source"))

    def window_closed(self, start: float, shared: WindowCounts) -> None:
        """A window ended: send its frame (the shared counts, or ours while private)."""
        if self.state is State.HOLDING:
            self._held_windows.append((start, self._held))
            self._held = []
            return
        if self.state is not State.STREAMING:
            return
        if self.private:
            counts, self._counts = self._counts, WindowCounts(self.by)
            if (
                self._deduper is None
                or self._deduper.exhausted
                or self.clock.seconds() >= self._handover_until
            ):
                self._deduper = None
                self.private = False  # from the next window on, the shared counts are ours
        else:
            counts = shared
        self._emit(self.framing.frame(frame(start, counts, self.k)))
        self.frames_sent += 1
        if self.limit is not None and self.frames_sent >= self.limit:
            self.close("limit")

    def gap(self, info: dict[str, Any]) -> None:
        if self.state is State.STREAMING:
            self._emit(self.framing.gap(info))

    def fail(self, error: str, reason: str) -> None:
        if self.state is State.HOLDING:
            self._failed = (error, reason)
            return
        self.close("error", error, reason)

    # -- start -------------------------------------------------------------

    def start(self, sid: str, current: float, past: History | None = None) -> None:
        """Headers, opening, the past period's frames, then the windows the held hits arrived in.

        ``current`` is the window the past period (``since=``) ended in (its
        stored part is the past's ``seed``); windows that closed while the
        stream was held are sent now, and hits held in windows the past
        period already covers count in the first live one: late, but once.
        """
        if self.gone or self.state is not State.HOLDING or not self._opened(sid):
            return
        for start, counts in past.windows if past is not None else ():
            # _opened() moved self.state on: mypy keeps the narrowing from the guard above.
            if self.state is not State.STREAMING:  # type: ignore[comparison-overlap]
                return
            self._emit(self.framing.frame(frame(start, counts, self.k)))
            self.frames_sent += 1
            if self.limit is not None and self.frames_sent >= self.limit:
                self.close("limit")
                return
        if past is not None and not past.recent.exhausted:
            self._deduper = past.recent
            self._handover_until = self.clock.seconds() + self.handover_window
        counts = WindowCounts(self.by)
        if past is not None and past.seed is not None:
            counts.merge(past.seed)
        held_windows, self._held_windows = self._held_windows, []
        for start, hits in held_windows:
            self._counts = counts
            self._count(hits)
            if start < current - 1e-6:
                continue  # the past period covers this window: its hits go in the next frame
            self._emit(self.framing.frame(frame(start, counts, self.k)))
            counts = WindowCounts(self.by)
            self.frames_sent += 1
            if self.limit is not None and self.frames_sent >= self.limit:
                self.close("limit")
                return
        self._counts = counts
        held, self._held = self._held, []
        self._count(held)
        self._start_timers(self.timeout)

    def _opened(self, sid: str) -> bool:
        """Headers and the opening line; False when the stream failed while held (it has ended)."""
        self._open()
        self._emit(self.framing.opening(sid))
        if self._failed is not None:
            self.close("error", *self._failed)
            return False
        return True

    # -- writing -----------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        queued = not self.gone and (self._paused or self._pending)
        if queued and self.pending_bytes + len(data) > self.max_pending:
            self._drop_slow_reader()
            return
        super()._emit(data)

    # -- ending ------------------------------------------------------------

    def _drop_slow_reader(self) -> None:
        reason = f"client fell more than {self.max_pending} bytes behind the counts; dropped"
        self._close_now(SLOW_READER, reason)

    def abandon(self) -> None:
        """Never started (answered with an HTTP error instead)."""
        if self.state is State.HOLDING:
            self._release()

    def _released(self) -> None:
        self._held.clear()
        on_gone, self.on_gone = self.on_gone, _noop
        on_gone(self)


def _noop(_stream: CountStream) -> None:
    return None


class SharedCounter(BaseCounter[CountStream]):
    """Counts by arrival: a hit is in the window open when it arrives."""

    def __init__(self, sid: str, by: str | None, every: float, clock: IReactorTime) -> None:
        super().__init__(sid, by, every, clock)
        self.current = WindowCounts(by)
        self.current_start = window_start(clock.seconds(), every)
        self._schedule()

    def deliver(self, entries: Sequence[SequencedHit]) -> None:
        add = self.current.add
        for entry in entries:
            add(entry.hit.get("_source"))
        self.hits_total += len(entries)
        if self.private:
            hits = [entry.hit for entry in entries]
            for stream in list(self.private):
                stream.observe(hits)

    def _schedule(self) -> None:
        self._schedule_at(self.current_start + self.every)

    def _tick(self) -> None:
        now = self.clock.seconds() + 1e-4  # a timer may fire a hair early
        while self.current_start + self.every <= now:
            closed, start = self.current, self.current_start
            self.current = WindowCounts(self.by)
            self.current_start = round(start + self.every, 3)
            self._hand_out(start, closed)
        self._schedule()


#: (sid, by, every, delay): streams of one key share one counter.
Key = tuple[str, str | None, float, float]
ListenerT = TypeVar("ListenerT", bound=WindowListener)


class Counters:
    """Every shared counter of this tailor, keyed by (sid, by, every, delay)."""

    def __init__(self, hub: PartitionedHub, clock: IReactorTime) -> None:
        self.hub = hub
        self.clock = clock
        self._counters: dict[Key, BaseCounter[Any]] = {}
        #: hits counted after their window's frame, tailor-wide (/metrics)
        self.late = LateTally()

    def __len__(self) -> int:
        return len(self._counters)

    def __iter__(self) -> Iterator[BaseCounter[Any]]:
        return iter(list(self._counters.values()))

    async def attach(self, sid: str, by: str | None, every: float, stream: CountStream) -> SharedSubscription:
        """Add ``stream`` to its counter (joining the sid on first use); returns once subscribed."""
        return await self._attach(
            (sid, by, every, 0.0), stream, lambda: SharedCounter(sid, by, every, self.clock)
        )

    async def attach_delayed(
        self, sid: str, by: str | None, every: float, delay: float, stream: DelayedListener
    ) -> SharedSubscription:
        """As ``attach``, for a stream counting by ``@timestamp`` with ``delay``."""
        return await self._attach(
            (sid, by, every, round(delay, 3)),  # 1.5s and 1500ms: one key
            stream,
            lambda: DelayedCounter(sid, by, every, delay, self.clock, self.late),
        )

    async def _attach(
        self, key: Key, stream: ListenerT, new: Callable[[], BaseCounter[ListenerT]]
    ) -> SharedSubscription:
        counter = self._counters.get(key)
        if counter is None:
            counter = new()
            self._counters[key] = counter
            self._join(key, counter)
        counter.add(stream)
        try:
            return await counter.when_joined()
        except BaseException:
            self.detach(*key[:3], stream, delay=key[3])
            raise

    def _join(self, key: Key, counter: BaseCounter[Any]) -> None:
        def failed(failure: Failure) -> None:
            if self._counters.get(key) is counter:
                del self._counters[key]
            counter.stop()
            counter.joined(failure)

        ensureDeferred(self.hub.join(counter.sid, counter)).addCallbacks(counter.joined, failed)

    def detach(
        self, sid: str, by: str | None, every: float, stream: WindowListener, *, delay: float = 0.0
    ) -> None:
        """Remove ``stream``; the last one out stops the counter and leaves the sid."""
        key = (sid, by, every, round(delay, 3))
        counter = self._counters.get(key)
        if counter is None or stream not in counter.streams:
            return
        counter.remove(stream)
        if counter.streams:
            return
        del self._counters[key]
        counter.stop()
        self.hub.leave(sid, counter)
