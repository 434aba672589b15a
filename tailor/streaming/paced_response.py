"""An endless HTTP response that a slow client cannot make grow without bound.

Tails and count streams differ in what they write and share how they write
it: once the status and headers are out the response is a push producer on
its request; while Twisted has it paused, frames wait in a queue whose size
is counted, a heartbeat keeps idle proxies from closing the connection, and
an ended document gets ``CLOSE_GRACE`` to drain before the connection is cut.
Subclasses decide when the queue is too long and what the frames are.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.web.http import Request
from zope.interface import implementer

from common.config import Settings

#: After the closing frame, how long a client that does not read may keep its connection.
CLOSE_GRACE = Settings.tailor_close_grace


class State(Enum):
    HOLDING = "holding"
    STREAMING = "streaming"
    CLOSED = "closed"


@implementer(IPushProducer)
class PacedResponse:
    """Flow control, heartbeat, timers and ending of one streaming response."""

    def __init__(
        self,
        request: Request,
        framing: Any,
        clock: IReactorTime,
        *,
        heartbeat: float,
        max_pending: int,
        close_grace: float = CLOSE_GRACE,
    ) -> None:
        self.request, self.framing, self.clock = request, framing, clock
        self.heartbeat, self.max_pending = heartbeat, max_pending
        #: seconds an ended document's connection is given to take its last bytes
        self.close_grace = close_grace
        self.state = State.HOLDING
        #: Frames written while paused, and their size: what ``max_pending`` bounds.
        self._pending: deque[bytes] = deque()
        self.pending_bytes = 0
        self._paused = self._finish_when_flushed = self._gone = False
        self._timers: list[IDelayedCall] = []
        self._heartbeat_call: IDelayedCall | None = None

    @property
    def gone(self) -> bool:
        """The client disconnected (or the stream ended): no more writes."""
        return self._gone

    # -- opening -------------------------------------------------------

    def _open(self) -> None:
        """Status and headers, then stream: from here on errors are frames, not HTTP statuses."""
        request = self.request
        request.setResponseCode(200)
        request.setHeader(b"content-type", self.framing.content_type)
        request.setHeader(b"cache-control", b"no-cache, no-store")
        # Reverse proxies (nginx) would otherwise buffer the stream.
        request.setHeader(b"x-accel-buffering", b"no")
        transport = request.transport
        if transport is not None and hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)  # a frame is a small write; send it now
        # Should the socket already be full, the first write past its buffer
        # pauses us through the channel: nothing to ask it beforehand.
        request.registerProducer(self, True)
        self.state = State.STREAMING

    def _start_timers(self, timeout: float | None) -> None:
        if timeout is not None:
            self._timers.append(self.clock.callLater(timeout, self.close, "timeout"))
        self._heartbeat_call = self.clock.callLater(self.heartbeat, self._beat)

    # -- writing -------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        if self._gone or not data:
            return
        if self._paused or self._pending:
            self._pending.append(data)
            self.pending_bytes += len(data)
            return
        self.request.write(data)
        if self._heartbeat_call is not None and self._heartbeat_call.active():
            self._heartbeat_call.reset(self.heartbeat)

    def _beat(self) -> None:
        if self.state is not State.STREAMING:
            return
        if not self._paused and not self._pending:
            self._emit(self.framing.heartbeat())
        self._heartbeat_call = self.clock.callLater(self.heartbeat, self._beat)

    def _drained(self) -> None:
        """Everything queued has been written (subclasses reset what they budget on it)."""

    # -- IPushProducer -------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._pending and not self._paused and not self._gone:
            data = self._pending.popleft()
            self.pending_bytes -= len(data)
            self.request.write(data)  # may pause us again at once
        if not self._pending:
            self._drained()
            if self._finish_when_flushed:
                self._finish()

    def stopProducing(self) -> None:
        self._release()

    # -- ending --------------------------------------------------------

    def _ended(self, end: str, error: str | None) -> None:
        """The document was closed with ``end`` (or ``error``): subclasses count it."""

    def close(self, end: str, error: str | None = None, reason: str | None = None) -> None:
        """End the document properly (``]}`` / ``event: end``); the client may keep the connection."""
        if self.state is not State.STREAMING:
            return
        self.state = State.CLOSED
        self._cancel_timers()
        self._emit(self.framing.closing(end, error, reason))
        self._ended(end, error)
        if self._pending:
            self._finish_when_flushed = True
            self._timers.append(self.clock.callLater(self.close_grace, self._abort))
        else:
            self._finish()

    def _close_now(self, error: str, reason: str) -> None:
        """Discard what the client has not taken and end its document with ``error``."""
        self._pending.clear()
        self.pending_bytes = 0
        self.state = State.CLOSED
        self._cancel_timers()
        # Written past the pause on purpose: a few bytes, so the reader,
        # whenever it gets there, finds a complete document saying why.
        self.request.write(self.framing.closing("error", error, reason))
        self._finish()

    def _finish(self) -> None:
        self._finish_when_flushed = False
        if self._gone:
            return
        self.request.unregisterProducer()
        self._gone = True
        self.request.finish()

    def _abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            # A TCP (or TLS) transport: ITransport does not declare abortConnection, ITCPTransport does.
            transport.abortConnection()  # type: ignore[attr-defined]
        self._release()

    def _cancel_timers(self) -> None:
        for call in [*self._timers, self._heartbeat_call]:
            if call is not None and call.active():
                call.cancel()
        self._timers = []
        self._heartbeat_call = None

    def _release(self) -> None:
        """Let go of everything at once: the client is gone or the stream never started."""
        self.state = State.CLOSED
        self._gone = True
        self._pending.clear()
        self.pending_bytes = 0
        self._cancel_timers()
        self._released()

    def _released(self) -> None:
        """Subclasses drop what they hold and tell their owner."""
