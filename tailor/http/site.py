"""The tailor's connections: a capped kernel send buffer, and a request's headers in time.

A client has ``ESTROM_TAILOR_IDLE_TIMEOUT`` seconds to send a request's
headers (from connecting, or from the end of its previous response),
trickling bytes or not; then it is cut. Streams, once their headers are in,
have no such limit.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

from twisted.protocols.basic import LineReceiver

from common.config import Settings
from common.http import JsonErrorChannel, QuietSite


class BoundedSendChannel(JsonErrorChannel):
    """A connection whose kernel send buffer is capped, and whose client must send headers in time.

    Left to autotuning, a stalled reader's socket soaks up megabytes before
    Twisted even tells the stream to hold back: the backlog then escapes the
    counted ``max_pending`` budget, and the closing ``"error"`` queues behind
    it. Capped, the backlog builds where it is counted and dropped.

    Twisted's idle timeout (the site's ``timeout``) runs from the connection
    (or the end of the last response) until a request's headers are in, and
    is off while a response streams. Twisted restarts it at every byte
    received; here it is not restarted: a client trickling a byte now and
    then must still finish its headers within the timeout.
    """

    send_buffer = 0
    on_timeout: Callable[[], None] | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.send_buffer:
            with contextlib.suppress(OSError, AttributeError):
                self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)

    def dataReceived(self, data: bytes) -> None:
        # HTTPChannel.dataReceived less its resetTimeout (see the class).
        LineReceiver.dataReceived(self, data)

    def timeoutConnection(self) -> None:
        if self.on_timeout is not None:
            self.on_timeout()
        super().timeoutConnection()


class TailSite(QuietSite):
    protocol = BoundedSendChannel

    def __init__(
        self,
        resource: Any,
        send_buffer: int,
        timeout: float = Settings.tailor_idle_timeout,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(resource, timeout=timeout)
        self.send_buffer = send_buffer
        self.on_timeout = on_timeout

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        channel.send_buffer = self.send_buffer
        channel.on_timeout = self.on_timeout
        return channel
