"""One budget of bytes for every backfill of a tailor, granted first come first served."""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, succeed


class BackfillBudget:
    """The bytes all backfills of a tailor may hold at once (``ESTROM_TAILOR_BACKFILL_TOTAL``).

    ``acquire`` answers at once while there is room, else when enough was
    released, first come first served; one request larger than the whole
    budget is granted when nothing else is held, so every backfill moves.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0
        self._waiting: deque[tuple[int, Deferred[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Backfills waiting for room."""
        return len(self._waiting)

    def _fits(self, n: int) -> bool:
        return self.held + n <= self.total or self.held == 0

    def acquire(self, n: int) -> Deferred[None]:
        if not self._waiting and self._fits(n):
            self.held += n
            return succeed(None)
        entry: tuple[int, Deferred[None]]

        def cancel(_d: Deferred[None]) -> None:
            if entry in self._waiting:
                self._waiting.remove(entry)
                self._grant()  # the head may have been the one that did not fit

        d: Deferred[None] = Deferred(cancel)
        entry = (n, d)
        self._waiting.append(entry)
        return d

    def grow(self, n: int) -> None:
        """Count ``n`` more bytes already held (a page larger than asked for)."""
        self.held += n

    def release(self, n: int) -> None:
        self.held = max(0, self.held - n)
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._fits(self._waiting[0][0]):
            n, d = self._waiting.popleft()
            self.held += n
            d.callback(None)
