"""A tail's ``n=`` backfill, read page by page as its client takes them.

The next page is fetched only once the client has taken the last one
(tailor/backfill/pages.py holds the pages and their memory), so a slow
client never makes the tailor hold more than a page of its backfill. A
client that leaves a page unread for ``stall`` seconds is dropped as a slow
reader. The stream (tailor/tails/stream.py) writes the pages and holds the
live hits behind them; this object only decides when the next page comes.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from common.contract import INVALID_QUERY, UNAVAILABLE
from common.engine import EngineRejected
from common.hits import Hit
from tailor.backfill.pages import BackfillPages

log = Logger()


class PageSink(Protocol):
    """What a feed asks of the stream it feeds."""

    @property
    def streaming(self) -> bool:
        """Open and writing (not yet ended)."""

    @property
    def reading_backfill(self) -> bool:
        """Streaming, with live hits still held behind the backfill."""

    @property
    def client_busy(self) -> bool:
        """The client has not taken all that was written (paused, or bytes pending)."""

    def send_page(self, hits: list[Hit]) -> None: ...

    def end_backfill(self) -> None: ...

    def close(self, end: str, error: str | None = None, reason: str | None = None) -> None: ...

    def drop_slow_reader(self, reason: str | None = None, why: str = "slow_reader") -> None: ...


class BackfillFeed:
    """When the next page of one tail's backfill is fetched, and when its client is too slow."""

    def __init__(self, sink: PageSink, clock: IReactorTime, stall: float) -> None:
        self.sink = sink
        self.clock = clock
        #: seconds a client may take to read one page
        self.stall = stall
        #: the pages still to come (None: no backfill, or one written whole)
        self.pages: BackfillPages | None = None
        #: a page is on its way from the engine
        self.fetching = False
        self.stall_call: IDelayedCall | None = None

    def pump(self) -> None:
        """Ask for the next page once the client has taken this one; end the backfill after the last."""
        sink = self.sink
        if not sink.reading_backfill or self.fetching:
            return
        pages = self.pages
        if pages is None or pages.done:
            sink.end_backfill()
            if sink.streaming:
                self.await_page_read()
            return
        if sink.client_busy:
            self.await_page_read()
            return
        self.cancel_stall()
        pages.page_read()
        self.fetching = True
        d = Deferred.fromCoroutine(pages.next())
        d.addCallbacks(self._page_in, self._page_failed)

    def await_page_read(self) -> None:
        """The page is not all taken yet: the client has ``stall`` seconds to take it."""
        if not self.sink.client_busy:
            if self.pages is not None:
                self.pages.page_read()
            return
        if self.stall_call is None or not self.stall_call.active():
            self.stall_call = self.clock.callLater(self.stall, self._stalled)

    def drained(self) -> None:
        """The client took everything written: the next page, or its bytes freed for others."""
        self.cancel_stall()
        if self.sink.reading_backfill:
            self.pump()
        elif self.pages is not None:
            self.pages.page_read()

    def framed(self, size: int, hits: int) -> None:
        if self.pages is not None:
            self.pages.framed(size, hits)

    def handover_over(self) -> None:
        if self.pages is not None:
            self.pages.handover_over()

    def close(self) -> None:
        """No more pages: the fetch in flight is ignored, the pages' memory given back."""
        self.cancel_stall()
        pages, self.pages = self.pages, None
        if pages is not None:
            pages.close()

    def cancel_stall(self) -> None:
        call, self.stall_call = self.stall_call, None
        if call is not None and call.active():
            call.cancel()

    def _page_in(self, hits: list[Hit]) -> None:
        self.fetching = False
        if not self.sink.reading_backfill:
            return
        self.sink.send_page(hits)
        self.pump()

    def _page_failed(self, failure: Failure) -> None:
        self.fetching = False
        if not self.sink.streaming or (self.pages is not None and self.pages.closed):
            return  # ended meanwhile: whatever the fetch says no longer matters
        if failure.check(CancelledError):
            return
        exc = failure.value
        if isinstance(exc, EngineRejected):
            self.sink.close("error", INVALID_QUERY.code, f"backfill search refused: {exc.reason}")
        else:
            log.warn("backfill.failed", error=repr(exc))
            self.sink.close("error", UNAVAILABLE.code, f"the backfill could not be read on: {exc}")

    def _stalled(self) -> None:
        self.stall_call = None
        if not self.sink.streaming or not self.sink.client_busy:
            return
        self.sink.drop_slow_reader(
            f"client did not read a page of the backfill within {self.stall:g}s; dropped "
            "(read faster, or ask for a smaller n=)",
            "slow_backfill_reader",
        )
