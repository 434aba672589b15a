"""The count frames of one ``delay=`` client: windows by ``@timestamp``, late hits sent again.

Its frames are the shared counter's (tailor/counts/delayed_counter.py), from
the window it started in, except for windows of its *own*: with ``since=``,
those of the past period up to the one it started in, whose counts are the
engine's plus the live hits after it (the hand-over of tailor/counts/history.py,
as without ``delay``). A closed window whose counts change is sent again, as
``{"t": ..., "total": ..., "by": {...}, "revised": true}`` with its new counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.hits import Hit
from tailor.counts.counting import WindowCounts, frame
from tailor.counts.delayed_counter import PlacedHit
from tailor.counts.event_time import EventWindows
from tailor.counts.history import History
from tailor.counts.stream import CountStream
from tailor.streaming.paced_response import State


class DelayedCountStream(CountStream):
    """A count stream whose windows close ``delay`` after their end and may be sent again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.windows: EventWindows | None = None
        self._held_placed: list[PlacedHit] = []
        #: The first window sent, and the end of the stream's own ones (milliseconds).
        self.first = 0
        self.own_until = 0
        #: Own windows that may still change (open, or closed and revisable).
        self.own: dict[int, WindowCounts] = {}

    def bind(self, windows: EventWindows) -> None:
        self.windows = windows

    # -- from the counter ----------------------------------------------------

    def observe_placed(self, placed: Sequence[PlacedHit]) -> int:
        """Count hits in the own windows; a closed one that changed is sent again."""
        if self.state is State.HOLDING:
            self._held_placed.extend(placed)
            return 0
        if self.state is not State.STREAMING or not self.own or self.windows is None:
            return 0
        closed_until = self.windows.closed_until
        changed = sorted(start for start in self._count_own(placed) if start < closed_until)
        for start in changed:
            self._send_again(start, self.own[start])
        return len(changed)

    def revise(self, start: int, shared: WindowCounts) -> bool:
        """A closed window of the counter changed: sent again if it is one this stream sent from it."""
        if self.state is not State.STREAMING or start < max(self.first, self.own_until):
            return False
        self._send_again(start, shared)
        return True

    def window_closed(self, start: float, shared: WindowCounts) -> None:
        if self.state is not State.STREAMING:
            return  # while holding: start() sends what closed meanwhile
        at = round(start * 1000)
        if at >= self.first:
            self._send(at, (self.own.get(at) if at < self.own_until else shared) or WindowCounts(self.by))
        self._let_go_of_settled()

    # -- start -------------------------------------------------------------

    def start(self, sid: str, current: float, past: History | None = None) -> None:
        """Headers, opening, then every window closed by now from the first one.

        With a past period (``since=``) the windows up to ``current`` are the
        stream's own: the engine's counts and the live hits held since it
        joined; without, the first window is ``current`` and every frame is
        the counter's.
        """
        windows = self.windows
        if self.gone or self.state is not State.HOLDING or windows is None or not self._opened(sid):
            return
        at = self.first = self.own_until = round(current * 1000)
        if past is not None:
            self.first = round(past.windows[0][0] * 1000) if past.windows else at
            self.own = {round(t * 1000): counts for t, counts in past.windows}
            self.own[at] = past.seed if past.seed is not None else WindowCounts(self.by)
            self.own_until = at + windows.every_ms
            if not past.recent.exhausted:
                self._deduper = past.recent
                self._handover_until = self.clock.seconds() + self.handover_window
        held, self._held_placed = self._held_placed, []
        self._count_own(held)
        t = self.first
        while t < windows.closed_until:
            counts = self.own.get(t) if t < self.own_until else windows.kept.get(t)
            if not self._send(t, counts or WindowCounts(self.by)):
                return
            t += windows.every_ms
        self._let_go_of_settled()
        self._start_timers(self.timeout)

    # -- counting and sending ----------------------------------------------

    def _count_own(self, placed: Sequence[PlacedHit]) -> set[int]:
        """Hits counted in the own windows they fall in (not those the engine already counted)."""
        changed: set[int] = set()
        own = self.own
        for start, hit in placed:
            counts = own.get(start)
            if counts is None or self._counted_before(hit):
                continue
            counts.add(hit.get("_source"))
            changed.add(start)
        return changed

    def _counted_before(self, hit: Hit) -> bool:
        """Whether the past period's search counted this hit already (during the hand-over)."""
        deduper = self._deduper
        if deduper is None:
            return False
        if deduper.exhausted or self.clock.seconds() >= self._handover_until:
            self._deduper = None
            return False
        return deduper.seen(hit)

    def _let_go_of_settled(self) -> None:
        """Own windows past revision are dropped; with none left, the stream needs no more hits."""
        if self.windows is None:
            return
        horizon = self.windows.horizon
        for start in [t for t in self.own if t < horizon]:
            del self.own[start]
        if not self.own:
            self.private = False
            self._deduper = None

    def _send(self, start: int, counts: WindowCounts) -> bool:
        """A window's frame; False once the stream has ended (its ``limit``, a slow reader)."""
        if self.state is not State.STREAMING:
            return False
        self._emit(self.framing.frame(frame(start / 1000, counts, self.k)))
        self.frames_sent += 1
        if self.limit is not None and self.frames_sent >= self.limit:
            self.close("limit")
        return self.state is State.STREAMING

    def _send_again(self, start: int, counts: WindowCounts) -> None:
        """A window sent before, with its new counts (``limit`` counts windows, not revisions)."""
        self._emit(self.framing.frame({**frame(start / 1000, counts, self.k), "revised": True}))

    def _released(self) -> None:
        self._held_placed.clear()
        self.own.clear()
        super()._released()
