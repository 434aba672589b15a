"""Whether a request's client is still there, known from ``notifyFinish`` alone.

``notifyFinish`` only reports to Deferreds asked for before the connection
is lost, and a tail's work (registration, subscription, backfill) takes a
while: so the watch is made the moment the request arrives, and whatever
the handler starts later asks the watch, not the request. Klein does the
same to cancel a handler's Deferred when its client goes away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.web.http import Request


class RequestWatch:
    """Calls back once when the response finished or the client went away."""

    def __init__(self, request: Request) -> None:
        self.gone = False
        #: True when the client went away (an error), False when we finished the response.
        self.lost = False
        self._callbacks: list[Callable[[], None]] = []
        request.notifyFinish().addBoth(self._done)

    def on_gone(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the request ends (at once if it already has)."""
        if self.gone:
            callback()
        else:
            self._callbacks.append(callback)

    def _done(self, result: Any) -> None:
        self.gone = True
        self.lost = result is not None
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
