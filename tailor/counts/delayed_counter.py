"""The shared counter of ``delay=`` streams: hits counted by ``@timestamp``, late ones revised.

Each hit is placed once per tailor and key (tailor/counts/event_time.py):
in an open window, or in a closed one kept for revision (its streams then
send that window again, ``"revised": true``), or nowhere when too late. A
window is handed to the streams when ``delay`` has passed after its end.
Streams with windows of their own (``since=``: the engine's counts plus the
live hits) see the placed hits while those windows can still change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.interfaces import IReactorTime

from common.hits import Hit
from tailor.counts.base import BaseCounter, WindowListener
from tailor.counts.counting import WindowCounts
from tailor.counts.event_time import EventWindows, Placed
from tailor.subscriptions.resume import SequencedHit

#: A hit and the window it counts in (its start, in milliseconds).
PlacedHit = tuple[int, Hit]


@dataclass
class LateTally:
    """Late hits, tailor-wide, for /metrics: frames sent again, and hits too late for that."""

    revisions: int = 0
    too_late: int = 0


class DelayedListener(WindowListener, Protocol):
    """A ``delay=`` count stream, as its counter sees it."""

    def bind(self, windows: EventWindows) -> None:
        """The counter's windows: which are closed, which still revisable."""

    def observe_placed(self, placed: Sequence[PlacedHit]) -> int:
        """Hits with their windows, while private; returns how many frames it sent again."""

    def revise(self, start: int, shared: WindowCounts) -> bool:
        """A closed window of the counter changed; whether the stream sent it again."""


class DelayedCounter(BaseCounter[DelayedListener]):
    """Counts by ``@timestamp``, each window closed ``delay`` after its end."""

    def __init__(
        self, sid: str, by: str | None, every: float, delay: float, clock: IReactorTime, late: LateTally
    ) -> None:
        super().__init__(sid, by, every, clock)
        self.delay = delay
        self.late = late
        self.windows = EventWindows(by, every, delay, clock.seconds())
        self._schedule_at(self.windows.next_close)

    def add(self, stream: DelayedListener) -> None:
        stream.bind(self.windows)
        super().add(stream)

    def deliver(self, entries: Sequence[SequencedHit]) -> None:
        windows = self.windows
        now = self.clock.seconds()
        placed: list[PlacedHit] = []
        revised: dict[int, WindowCounts] = {}
        for entry in entries:
            source = entry.hit.get("_source")
            start = windows.place(source, now)
            outcome = windows.add(start, source)
            if outcome is Placed.REVISED:
                revised[start] = windows.kept[start]
            elif outcome is Placed.TOO_LATE:
                self.late.too_late += 1
            placed.append((start, entry.hit))
        self.hits_total += len(entries)
        for stream in list(self.private):
            self.late.revisions += stream.observe_placed(placed)
        for start in sorted(revised):
            for stream in list(self.streams):
                self.late.revisions += stream.revise(start, revised[start])

    def _tick(self) -> None:
        now = self.clock.seconds() + 1e-4  # a timer may fire a hair early
        while (closed := self.windows.close_next(now)) is not None:
            start, counts = closed
            self._hand_out(start / 1000, counts)
        self._schedule_at(self.windows.next_close)
