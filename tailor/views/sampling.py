"""``max_rate=<k>``: above k hits a second, a tail's hits are sampled, and each sampled second says so.

Each tail samples for itself (clients of one sid may each ask for their own
rate). Seconds are the tailor's clock's, ``[s, s + 1)``, counted when a hit
reaches the tail (after its view's delay, and after the hand-over from a
backfill, which is never sampled). A second's count is not known before it
is over, so the second before decides how its hits go:

- after a second at or under k (or none): hits pass at once, up to k; past
  k the rest of the second is left out (a burst's first second sends its
  first k);
- after a second over k: the second's hits are held and a uniform sample of
  k of them (reservoir sampling) goes out, in arrival order, when the
  second is over: every hit of the second equally likely, exactly k sent
  when more came, all of them when k or fewer did. Hits wait at most a
  second, and only while the rate is over k.

So a second that stays under k never loses a hit, and at a steady rate over
k each second sends exactly k, fairly. A second in which at least one hit
was left out is reported once it is over (or when the stream ends): its
start, how many hits matched and how many were sent. Over the reported
seconds, ``sent`` adds up to the hits the client got and ``matched`` to the
hits that reached the tail.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from tailor.counts.counting import rfc3339

T = TypeVar("T")


@dataclass(frozen=True)
class SampledSecond:
    """One second in which hits were left out: ``matched`` reached the tail, ``sent`` went out."""

    start: int
    matched: int
    sent: int

    def frame(self) -> dict[str, Any]:
        """``{"t": <second start, RFC 3339 UTC>, "matched": n, "sent": k}``."""
        return {"t": rfc3339(self.start), "matched": self.matched, "sent": self.sent}


class Verdict(Enum):
    """What becomes of one hit offered to a sampler."""

    SEND = "send"  # goes out now
    HELD = "held"  # may go out at its second's end (a sample is being drawn)
    OUT = "out"  # left out


class RateSampler(Generic[T]):
    """One tail's sampling: which hits of the current second go out, when, and its report."""

    def __init__(self, max_rate: int, rng: random.Random | None = None) -> None:
        self.max_rate = max_rate
        self._random = (rng or random.Random()).random
        #: the current second's start, None before the first hit
        self.second: int | None = None
        self.matched = 0
        self.sent = 0
        #: the second before was over the rate: this second's hits are sampled at its end
        self.holding = False
        #: the sample drawn so far: (arrival number in the second, hit)
        self._kept: list[tuple[int, T]] = []

    def roll(self, now: float) -> tuple[list[T], SampledSecond | None]:
        """Move on to the second of ``now`` (never back): the hits the second it closes releases,
        in arrival order, and its report if it left hits out."""
        second = math.floor(now)
        current = self.second
        if current is not None and second <= current:
            return [], None
        released, closed = self._close()
        self.holding = current is not None and second == current + 1 and self.matched > self.max_rate
        self.second, self.matched, self.sent = second, 0, 0
        return released, closed

    def offer(self, hit: T) -> Verdict:
        """One more hit of the current second."""
        self.matched += 1
        k = self.max_rate
        if not self.holding:
            if self.sent < k:
                self.sent += 1
                return Verdict.SEND
            return Verdict.OUT
        if len(self._kept) < k:
            self._kept.append((self.matched, hit))
            return Verdict.HELD
        slot = int(self._random() * self.matched)  # keep it with probability k / matched
        if slot < k:
            self._kept[slot] = (self.matched, hit)
        return Verdict.HELD

    def flush(self) -> tuple[list[T], SampledSecond | None]:
        """The current second's sample and report at once (the stream ends)."""
        closed = self._close()
        self.matched = self.sent = 0
        return closed

    def _close(self) -> tuple[list[T], SampledSecond | None]:
        released = [hit for _, hit in sorted(self._kept, key=lambda kept: kept[0])]
        self._kept = []
        if self.holding:
            self.sent = len(released)
        if self.second is None or self.sent >= self.matched:
            return released, None
        return released, SampledSecond(self.second, self.matched, self.sent)


@dataclass(eq=False)
class TailSampling(Generic[T]):
    """A tail's sampler on the reactor's clock: a second's sample and report go out once it is
    over, by a timer (not the next hit), or when the stream ends (``flush``). What falls due
    after the stream ended otherwise is the stream's to ignore."""

    sampler: RateSampler[T]
    clock: IReactorTime
    #: frames the hits a second's sample lets through
    release: Callable[[list[T]], None]
    #: says a sampled second in the stream
    report: Callable[[SampledSecond], None]
    #: told how many hits each reported second left out (metrics)
    left_out: Callable[[int], None]
    _call: IDelayedCall | None = None

    def begin(self) -> None:
        """Hits are about to be offered: the second before, if over, releases and reports first."""
        current = self.sampler.second
        closed = self.sampler.roll(self.clock.seconds())
        if self.sampler.second != current:
            self.stop()  # a timer set for the second just closed: this second sets its own
        self._say(*closed)

    def offer(self, hit: T) -> bool:
        """Whether ``hit`` goes out now; one held or left out makes its second's end due."""
        if self.sampler.offer(hit) is Verdict.SEND:
            return True
        second = self.sampler.second
        if second is not None and (self._call is None or not self._call.active()):
            end = second + 1
            self._call = self.clock.callLater(max(0.0, end - self.clock.seconds()), self._over, end)
        return False

    def _over(self, end: int) -> None:
        self._call = None
        # Not before ``end``: a timer may fire a hair early, and the second must close all the same.
        self._say(*self.sampler.roll(max(self.clock.seconds(), end)))

    def flush(self) -> None:
        """The stream ends: the current second's sample and report now."""
        self.stop()
        self._say(*self.sampler.flush())

    def stop(self) -> None:
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _say(self, released: list[T], second: SampledSecond | None) -> None:
        if released:
            self.release(released)
        if second is not None:
            self.left_out(second.matched - second.sent)
            self.report(second)
