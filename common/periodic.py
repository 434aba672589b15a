"""Periodic work that never overlaps itself: sweeps, access rechecks, file polls.

Each look may wait on the engine or the router; when the next one is due
while the last still runs, it is skipped rather than stacked (a slow engine
gets one question at a time). A failure is logged under the work's name and
the next look runs as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()


class Periodic:
    """``work`` every ``interval`` seconds between ``start`` and ``stop``; ``interval`` 0 never runs."""

    def __init__(
        self,
        work: Callable[[], Coroutine[Any, Any, Any] | Deferred[Any] | None],
        interval: float,
        name: str,
        clock: IReactorTime | None = None,
    ) -> None:
        self.work = work
        self.interval = interval
        self.name = name
        self.clock = clock
        self.loop: LoopingCall | None = None
        #: the look in progress, if any
        self.current: Deferred[Any] | None = None

    @property
    def running(self) -> bool:
        return self.loop is not None and self.loop.running

    def start(self) -> None:
        """The first look after one ``interval``; starting twice is starting once."""
        if self.interval <= 0 or self.running:
            return
        self.loop = LoopingCall(self.tick)
        if self.clock is not None:
            self.loop.clock = self.clock
        self.loop.start(self.interval, now=False)

    def stop(self) -> None:
        """No more looks; one in progress finishes."""
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None

    def tick(self) -> None:
        """One look, unless the last is still running."""
        if self.current is not None:
            return
        look: Deferred[Any] = maybeDeferred(self.work)  # a coroutine is wrapped, an exception caught
        self.current = look
        look.addErrback(self._failed)
        look.addBoth(self._done)

    def _failed(self, failure: Failure) -> None:
        log.failure(self.name + "_failed", failure)

    def _done(self, _result: Any) -> None:
        self.current = None
