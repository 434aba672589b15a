"""What every shared counter does, whichever time it counts by: its streams, its hub join, its timer.

A counter is the hub's one listener of a sid for all the count streams of
one key; how it cuts hits into windows is its subclass's (by arrival:
tailor/counts/stream.py ``SharedCounter``; by ``@timestamp`` with a
``delay``: tailor/counts/delayed_counter.py ``DelayedCounter``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from tailor.counts.counting import WindowCounts
from tailor.subscriptions.resume import SequencedHit
from tailor.subscriptions.shared import SharedSubscription

log = Logger()


class WindowListener(Protocol):
    """A count stream, as its counter sees it."""

    #: whether it still wants every hit (its counts are partly its own)
    private: bool

    def window_closed(self, start: float, shared: WindowCounts) -> None: ...
    def gap(self, info: dict[str, Any]) -> None: ...
    def fail(self, error: str, reason: str) -> None: ...


StreamT = TypeVar("StreamT", bound=WindowListener)


class BaseCounter(ABC, Generic[StreamT]):
    """Counts one sid's hits by one field in windows of one length, for all its streams."""

    def __init__(self, sid: str, by: str | None, every: float, clock: IReactorTime) -> None:
        self.sid = sid
        self.by = by
        self.every = every
        self.clock = clock
        self.streams: set[StreamT] = set()
        #: Streams that want every hit (their first window, a hand-over).
        self.private: set[StreamT] = set()
        self.hits_total = 0
        self.last: WindowCounts | None = None
        self.since = clock.seconds()
        self._tick_call: IDelayedCall | None = None
        self.outcome: SharedSubscription | Failure | None = None
        self._waiters: list[Deferred[SharedSubscription]] = []

    def add(self, stream: StreamT) -> None:
        """A new stream: it sees every hit until it says it needs no more."""
        self.streams.add(stream)
        self.private.add(stream)

    def remove(self, stream: StreamT) -> None:
        self.streams.discard(stream)
        self.private.discard(stream)

    # -- the hub's listener ------------------------------------------------

    @abstractmethod
    def deliver(self, entries: Sequence[SequencedHit]) -> None:
        """New hits, counted in their windows."""

    @property
    def bridges_gaps(self) -> bool:
        return True  # a count stream can say "hits may be missing here"

    def gap(self, info: dict[str, Any]) -> None:
        for stream in list(self.streams):
            stream.gap(info)

    def fail(self, error: str, reason: str) -> None:
        for stream in list(self.streams):
            stream.fail(error, reason)

    # -- windows -----------------------------------------------------------

    @abstractmethod
    def _tick(self) -> None:
        """Close the windows that are due, then schedule the next tick."""

    def _schedule_at(self, when: float) -> None:
        self._tick_call = self.clock.callLater(max(0.0, when - self.clock.seconds()), self._tick)

    def _hand_out(self, start: float, closed: WindowCounts) -> None:
        """A window closed: every stream sends its frame; those done with private counting say so."""
        self.last = closed
        for stream in list(self.streams):
            try:
                stream.window_closed(start, closed)
            except Exception:
                log.failure("counts.window_failed", sid=self.sid)
            if not stream.private:
                self.private.discard(stream)

    def stop(self) -> None:
        if self._tick_call is not None and self._tick_call.active():
            self._tick_call.cancel()
        self._tick_call = None

    # -- readiness (one hub join, many streams waiting on it) ----------------

    def joined(self, outcome: SharedSubscription | Failure) -> None:
        self.outcome = outcome
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if d.called:  # cancelled: its client left
                continue
            _settle(d, outcome)

    def when_joined(self) -> Deferred[SharedSubscription]:
        """The sid's subscription once the hub has it (its failure if not); the streams wait on it."""
        d: Deferred[SharedSubscription] = Deferred()
        if self.outcome is None:
            self._waiters.append(d)
        else:
            _settle(d, self.outcome)
        return d


def _settle(d: Deferred[SharedSubscription], outcome: SharedSubscription | Failure) -> None:
    if isinstance(outcome, Failure):
        d.errback(outcome)
    else:
        d.callback(outcome)
