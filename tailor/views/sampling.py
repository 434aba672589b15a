"""``max_rate=<k>``: above k hits a second, a tail's hits are sampled, and each sampled second says so.

Each tail samples for itself (clients of one sid may each ask for their own
rate). Seconds are the tailor's clock's, ``[s, s + 1)``, counted when a hit
reaches the tail (after its view's delay, and after the hand-over from a
backfill, which is never sampled). Hits go out as they come (a second's
count is not known before it is over), so the second before stands in for
it: with m hits in the second before (m > k), the i-th hit of this second is
sent with probability (k - sent so far) / (m - i + 1), selection sampling
(Knuth's Algorithm S). So:

- at a steady rate above k, each second sends exactly k of its hits, every
  hit of the second as likely to be sent as any other;
- never more than k in a second: past m hits (the rate rose), none is sent,
  and a burst after a quiet second (m <= k, or none) sends its first k; the
  next second's m then follows the burst;
- below k, hits pass untouched, and say nothing.

A second in which at least one hit was left out is reported once it is over
(or when the stream ends): its start, how many hits matched and how many
were sent. Over the reported seconds, ``sent`` adds up to the hits the
client got and ``matched`` to the hits that reached the tail.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from tailor.counts.counting import rfc3339


@dataclass(frozen=True)
class SampledSecond:
    """One second in which hits were left out: ``matched`` reached the tail, ``sent`` went out."""

    start: int
    matched: int
    sent: int

    def frame(self) -> dict[str, Any]:
        """``{"t": <second start, RFC 3339 UTC>, "matched": n, "sent": k}``."""
        return {"t": rfc3339(self.start), "matched": self.matched, "sent": self.sent}


class RateSampler:
    """One tail's sampling: which hits of the current second go out, and its report."""

    def __init__(self, max_rate: int, rng: random.Random | None = None) -> None:
        self.max_rate = max_rate
        self._random = (rng or random.Random()).random
        #: the current second's start, None before the first hit
        self.second: int | None = None
        self.matched = 0
        self.sent = 0
        #: the hits expected this second (the second before's); 0: none expected, pass up to k
        self._expected = 0

    @property
    def leaving_out(self) -> bool:
        """Whether the current second has left a hit out (its report is due at its end)."""
        return self.sent < self.matched

    def roll(self, now: float) -> SampledSecond | None:
        """Move on to the second of ``now`` (never back); the report of the second it closes, if any."""
        second = math.floor(now)
        current = self.second
        if current is not None and second <= current:
            return None
        closed = self._report()
        before = self.matched if current is not None and second == current + 1 else 0
        self._expected = before if before > self.max_rate else 0
        self.second, self.matched, self.sent = second, 0, 0
        return closed

    def admit(self) -> bool:
        """One more hit of the current second: whether it is sent."""
        self.matched += 1
        slots = self.max_rate - self.sent
        if slots <= 0:
            return False
        if self._expected:
            population = self._expected - self.matched + 1  # this hit and those expected after it
            if population <= 0 or self._random() * population >= slots:
                return False
        self.sent += 1
        return True

    def flush(self) -> SampledSecond | None:
        """The current second's report at once (the stream ends), if it left hits out."""
        closed = self._report()
        self.matched = self.sent = 0
        return closed

    def _report(self) -> SampledSecond | None:
        if self.second is None or self.sent >= self.matched:
            return None
        return SampledSecond(self.second, self.matched, self.sent)


@dataclass(eq=False)
class TailSampling:
    """A tail's sampler on the reactor's clock: each second that left hits out is reported once
    it is over, by a timer (not the next hit), or when the stream ends (``flush``). A report
    falling due after the stream ended otherwise is the stream's to ignore."""

    sampler: RateSampler
    clock: IReactorTime
    #: says a sampled second in the stream
    report: Callable[[SampledSecond], None]
    #: told of each hit left out (metrics)
    left_out: Callable[[int], None]
    _call: IDelayedCall | None = None

    def begin(self) -> None:
        """Hits are about to be framed: the second before, if over and sampled, is reported first."""
        current = self.sampler.second
        closed = self.sampler.roll(self.clock.seconds())
        if self.sampler.second != current:
            self.stop()  # a timer set for the second just closed: this second sets its own
        self._say(closed)

    def admit(self) -> bool:
        """Whether the next hit goes out; one left out makes its second's report due at its end."""
        if self.sampler.admit():
            return True
        self.left_out(1)
        second = self.sampler.second
        if second is not None and (self._call is None or not self._call.active()):
            end = second + 1
            self._call = self.clock.callLater(max(0.0, end - self.clock.seconds()), self._over, end)
        return False

    def _over(self, end: int) -> None:
        self._call = None
        # Not before ``end``: a timer may fire a hair early, and the second must close all the same.
        self._say(self.sampler.roll(max(self.clock.seconds(), end)))

    def flush(self) -> None:
        """The stream ends: the current second's report now, if it left hits out."""
        self.stop()
        self._say(self.sampler.flush())

    def stop(self) -> None:
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _say(self, second: SampledSecond | None) -> None:
        if second is not None:
            self.report(second)
