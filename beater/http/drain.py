"""SIGTERM: one drain for both HTTP faces, ingest and the engine's bulk API.

The beater stops listening, lets the work in flight finish for up to
``ESTROM_SHUTDOWN_GRACE`` seconds, and only then leaves the router: the
last publishes of what it finishes still need the session. Work in flight
is whatever was ``track``-ed: ingest requests waiting for the pipeline,
bulk requests between their body and their answer, and the documents a bulk
request queued once the engine stored them. While draining, a new request
is answered 503 (``refuse_new``) and every answer closes its connection,
so the next request finds the port shut. When the grace runs out
(``giving_up``) what still waits is cancelled: its handler answers 503.
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.web.http import Request

from common.errors import ShuttingDown

log = Logger()

T = TypeVar("T")


def close_after(request: Request) -> None:
    """The answer closes its connection: the client's next request finds the port shut."""
    request.setHeader(b"connection", b"close")
    channel = getattr(request, "channel", None)
    if channel is not None:
        channel.persistent = False


class Drain:
    """Whether the beater is draining, and the work a drain waits for."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        #: Set on SIGTERM: new requests get 503, those in flight may finish.
        self.draining = False
        #: Set when the grace ran out: what still waits is given up.
        self.giving_up = False
        self._in_flight: set[Deferred[Any]] = set()

    @property
    def in_flight(self) -> int:
        """Work a drain would wait for now."""
        return len(self._in_flight)

    def track(self, d: Deferred[T]) -> Deferred[T]:
        """Count ``d`` as work in flight: a drain waits for it (up to the grace), then cancels it."""
        self._in_flight.add(d)

        def forget(result: object) -> object:
            self._in_flight.discard(d)
            return result

        d.addBoth(forget)
        return d

    def close_if_draining(self, request: Request) -> None:
        """While draining, every answer closes its connection."""
        if self.draining:
            close_after(request)

    def refuse_new(self, request: Request) -> None:
        """A request that would start new work while draining: 503, and its connection closes."""
        if self.draining:
            close_after(request)
            raise ShuttingDown("beater")

    async def drain(self, port: IListeningPort, grace: float) -> None:
        """Stop listening on ``port``, let the work in flight finish for up to ``grace`` s, cancel the rest.

        A request answered 503 here may still have some matches published
        (the sender retries: at-least-once); none is ever answered 200
        without every match acknowledged, because 200 comes only from the
        pipeline. Work in flight may add more while it finishes (a bulk
        request queues its documents once the engine has answered): the
        drain waits until nothing is left, not only for what was there at
        the start.
        """
        self.draining = True
        stopping = port.stopListening()
        if stopping is not None:
            await stopping
        log.info("beater.draining", requests=len(self._in_flight), grace=grace)
        deadline = self.clock.seconds() + grace
        while self._in_flight:
            observers: list[Deferred[None]] = []
            for d in list(self._in_flight):
                seen: Deferred[None] = Deferred()

                def observe(result: object, seen: Deferred[None] = seen) -> object:
                    if not seen.called:
                        seen.callback(None)
                    return result

                d.addBoth(observe)
                observers.append(seen)
            waiting = gatherResults(observers, consumeErrors=True)
            waiting.addTimeout(max(0.0, deadline - self.clock.seconds()), self.clock)
            try:
                await waiting
            except Exception:
                left = list(self._in_flight)
                log.warn("beater.drain_timeout", refused=len(left))
                self.giving_up = True
                for d in left:
                    d.cancel()  # the handler answers 503
                break
        log.info("beater.drained")
