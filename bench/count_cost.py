"""Tailor CPU per hit, with and without live counts, in one process.

The tailor's own fan-out path, real objects: the hub's subscription, 100
NDJSON tail streams, and, with counting, 100 count streams of one
(sid, by=service, every=1) sharing one counter. Hits are handed to the
subscription in events of 50 (a beater batch), 10,000 of them a simulated
second, windows closed by a clock; the sockets are byte sinks. What it
measures is the tailor's CPU per hit for that fan-out, not the network or
WAMP decoding, which are the same with and without counting.

    .venv/bin/python -m bench.count_cost
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock

from tailor.client_stream import ClientStream, StreamStats
from tailor.count_stream import Counters, CountStream
from tailor.request_watch import RequestWatch
from tailor.stream_format import EncodedHit, NdjsonCountFraming, NdjsonFraming
from tailor.subscriptions import SubscriptionHub

SID = "0123456789abcdef"
VIEWERS = 100
HITS_PER_SECOND = 10_000
EVENT_SIZE = 50
SECONDS = 5


class Sink:
    """What a stream needs of a request: bytes go nowhere."""

    transport = None

    def __init__(self) -> None:
        self.bytes = 0

    def notifyFinish(self) -> Deferred[None]:
        return Deferred()

    def setResponseCode(self, code: int) -> None: ...

    def setHeader(self, name: bytes, value: bytes) -> None: ...

    def registerProducer(self, producer: Any, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def finish(self) -> None: ...


class Session:
    def __init__(self) -> None:
        self.handler: Any = None

    def is_attached(self) -> bool:
        return True

    def subscribe(self, handler: Any, topic: str) -> Deferred[Any]:
        self.handler = handler
        return succeed(type("Subscription", (), {"active": True})())


class Wamp:
    def __init__(self, session: Session) -> None:
        self.session = session

    def require(self) -> Session:
        return self.session

    def when_joined(self, callback: Any) -> None: ...


def run(counting: bool) -> float:
    """CPU seconds per hit."""
    clock = Clock()
    clock.advance(1_000_000)
    session = Session()
    hub = SubscriptionHub(Wamp(session), clock, 0, 0.0, prepare=EncodedHit)  # type: ignore[arg-type]
    for _ in range(VIEWERS):
        request = Sink()
        stream = ClientStream(
            request,  # type: ignore[arg-type]
            NdjsonFraming(),
            clock,
            limit=None,
            timeout=None,
            heartbeat=15,
            max_pending=1 << 30,
            stats=StreamStats(),
            on_gone=lambda s: None,
            watch=RequestWatch(request),  # type: ignore[arg-type]
        )
        sub = _result(ensureDeferred(hub.join(SID, stream)))
        stream.start(SID, sub.event_id)
    counters = Counters(hub, clock)
    if counting:
        for _ in range(VIEWERS):
            request = Sink()
            count = CountStream(
                request,  # type: ignore[arg-type]
                RequestWatch(request),  # type: ignore[arg-type]
                NdjsonCountFraming(),
                clock,
                by="service",
                k=10,
                limit=None,
                timeout=None,
                heartbeat=15,
                max_pending=1 << 30,
                on_gone=lambda s: None,
            )
            _result(ensureDeferred(counters.attach(SID, "service", 1.0, count)))
            count.start(SID, clock.seconds() // 1)
        clock.advance(1)  # past the first window: every count stream uses the shared counter
    hits = [
        {
            "_index": "logs",
            "_source": {"service": f"svc-{i % 12}", "level": "error", "n": i, "message": "x" * 80},
        }
        for i in range(EVENT_SIZE)
    ]
    events_per_second = HITS_PER_SECOND // EVENT_SIZE
    started = time.process_time()
    for _ in range(SECONDS):
        for _ in range(events_per_second):
            session.handler(*hits)
        clock.advance(1)
    return (time.process_time() - started) / (SECONDS * HITS_PER_SECOND)


def _result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    return out[0]


def main() -> None:
    run(False)  # warm-up
    without = min(run(False) for _ in range(3))
    with_counts = min(run(True) for _ in range(3))
    print(f"viewers: {VIEWERS} tails; with counting also {VIEWERS} count streams (by=service, every=1)")
    print(f"hits: {HITS_PER_SECOND}/s for {SECONDS} s in events of {EVENT_SIZE}")
    print(f"tailor CPU per hit without counting: {without * 1e6:.1f} us")
    print(f"tailor CPU per hit with counting:    {with_counts * 1e6:.1f} us")
    print(f"counting adds: {100 * (with_counts - without) / without:+.1f} %")


if __name__ == "__main__":
    main()
