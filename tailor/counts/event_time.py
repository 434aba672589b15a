"""Counting by event time (``delay=``), the pure part: a hit's window, and the windows kept open.

A hit counts in the window its ``@timestamp`` falls in, read as the engine's
``date`` field reads it, so that the live frames converge to what a search of
the stored documents says. A window stays *open* until ``delay`` has passed
after its end; then it is *closed* (its frame is sent) and kept a while for
*revision*: a hit for it that comes later still changes its counts, and the
streams send the window again. Older than that, a hit is *too late*: counted
nowhere, only in a metric, so that memory stays bounded.

Hits without a ``@timestamp`` the engine would read, and hits stamped more
than ``delay`` ahead of the tailor's clock (a sender whose clock runs fast),
count by arrival, in the window open now, as without ``delay``.
All instants here are whole milliseconds since the epoch.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from tailor.counts.counting import WindowCounts, window_ms

TIMESTAMP = "@timestamp"
#: How long a closed window may still be revised ...
KEPT_FOR = 60.0
#: ... in at most this many windows (and at least one).
KEPT_WINDOWS = 60

#: What the engine's default ``date`` format reads: ISO 8601 with a date first, or epoch milliseconds.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T.+)?")
_EPOCH_MILLIS = re.compile(r"-?\d+(?:\.\d+)?")


def event_time(source: Any) -> float | None:
    """A document's ``@timestamp`` in seconds since the epoch; None when it has none the engine reads.

    Strings are ISO 8601 (``2026-12-01T11:09:00.5Z``; no offset is UTC, a
    date alone its midnight) or epoch milliseconds, as are numbers.
    """
    value = source.get(TIMESTAMP) if isinstance(source, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000
    elif isinstance(value, str) and _EPOCH_MILLIS.fullmatch(value.strip()):
        seconds = float(value) / 1000
    elif isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    else:
        return None
    return seconds if math.isfinite(seconds) else None


def kept_windows(every: float) -> int:
    """How many closed windows stay revisable: ``KEPT_FOR`` seconds' worth, 1 to ``KEPT_WINDOWS``."""
    return max(1, min(KEPT_WINDOWS, math.ceil(KEPT_FOR / every)))


class Placed(Enum):
    """Where a hit's count went."""

    OPEN = "open"  # its window is still open: in its frame, when sent
    REVISED = "revised"  # its window was sent: the window is sent again
    TOO_LATE = "too_late"  # its window is no longer kept: not counted


class EventWindows:
    """The open windows of one delayed counter and the closed ones kept for revision.

    Windows before ``closed_until`` are closed, and those from ``horizon`` on
    are kept. At most ``2 * delay / every + 2`` windows are open (the past
    ``delay``, and as much ahead for fast clocks) and ``kept_windows(every)``
    closed ones are kept, each bounded as any window is (``MAX_VALUES``).
    """

    def __init__(self, by: str | None, every: float, delay: float, now: float) -> None:
        self.by = by
        self.every = every
        self.every_ms = round(every * 1000)
        self.delay = delay
        self.keep = kept_windows(every)
        #: The first window not closed yet: the one that holds ``now - delay``.
        self.closed_until = window_ms(now - delay, every)
        self.open: dict[int, WindowCounts] = {}
        self.kept: dict[int, WindowCounts] = {}

    @property
    def horizon(self) -> int:
        """The oldest window a late hit can still revise."""
        return self.closed_until - self.keep * self.every_ms

    @property
    def next_close(self) -> float:
        """When (seconds) the oldest open window closes: ``delay`` after its end."""
        return (self.closed_until + self.every_ms) / 1000 + self.delay

    def place(self, source: Any, now: float) -> int:
        """The window of a hit arriving ``now``: its ``@timestamp``'s, else its arrival's."""
        t = event_time(source)
        if t is None or t > now + self.delay:
            t = now
        return window_ms(t, self.every)

    def add(self, start: int, source: Any) -> Placed:
        """Count a hit in window ``start`` (from ``place``)."""
        if start >= self.closed_until:
            where, placed = self.open, Placed.OPEN
        elif start >= self.horizon:
            where, placed = self.kept, Placed.REVISED
        else:
            return Placed.TOO_LATE
        counts = where.get(start)
        if counts is None:
            counts = where[start] = WindowCounts(self.by)
        counts.add(source)
        return placed

    def close_next(self, now: float) -> tuple[int, WindowCounts] | None:
        """Close the oldest open window if ``delay`` has passed after its end (kept, the oldest kept let go)."""
        if self.next_close > now:
            return None
        start = self.closed_until
        counts = self.open.pop(start, None) or WindowCounts(self.by)
        self.kept[start] = counts
        self.closed_until = start + self.every_ms
        horizon = self.horizon
        for old in [t for t in self.kept if t < horizon]:
            del self.kept[old]
        return start, counts
