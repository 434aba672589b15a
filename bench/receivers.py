"""Who receives the hits in a benchmark: WAMP subscribers and HTTP tails through the tailor.

Both count hits per sid and take each hit's latency from the ``sent_at``
its document was stamped with when POSTed. They run on the reactor thread;
read them there too (``devstack.wamp_client.on_reactor``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool


class HitLog:
    """Hits received per sid, with their POST-to-receipt latencies."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.per_sid: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.events = 0
        self.last = 0.0
        self._short: Counter[str] = Counter()  # hits still awaited per sid, while waiting
        self._waiter: Deferred[bool] | None = None

    @property
    def total(self) -> int:
        return sum(self.per_sid.values())

    def record(self, sid: str, hits: tuple[Any, ...]) -> None:
        now = time.time()
        self.latencies += [now - hit["_source"]["sent_at"] for hit in hits]
        self.per_sid[sid] += len(hits)
        self.events += 1
        self.last = now
        if self._waiter is not None and sid in self._short:
            self._short[sid] -= len(hits)
            if self._short[sid] <= 0:
                del self._short[sid]
            if not self._short:
                self._waiter, waiter = None, self._waiter
                waiter.callback(True)

    def handler(self, sid: str) -> Any:
        """A WAMP event handler for ``docs-for-<sid>``."""

        def on_event(*hits: Any, **_kwargs: Any) -> None:
            self.record(sid, hits)

        return on_event

    def wait_complete(self, expected: Counter[str], timeout: float) -> Deferred[bool]:
        """Fires True once every sid got at least its expected hits, False after ``timeout`` seconds.

        Per sid, not in total: duplicates on one sid (after a retry) must not
        stand in for hits another sid is still waiting for.
        """
        d: Deferred[bool] = Deferred()
        short = Counter({sid: n - self.per_sid[sid] for sid, n in expected.items() if n > self.per_sid[sid]})
        if not short:
            d.callback(True)
            return d
        self._short, self._waiter = short, d

        def expire() -> None:
            if self._waiter is d:
                self._waiter = None
                d.callback(False)

        reactor.callLater(timeout, expire)
        return d

    def check(self, expected: Counter[str], sids: list[str]) -> dict[str, int]:
        """Per sid: ok (exactly as expected), short (fewer: ``missing`` hits), over (duplicates: ``extra``)."""
        ok = short = over = missing = extra = 0
        for sid in sids:
            got, want = self.per_sid.get(sid, 0), expected.get(sid, 0)
            ok += got == want
            short += got < want
            over += got > want
            missing += max(0, want - got)
            extra += max(0, got - want)
        return {"sids_ok": ok, "sids_short": short, "sids_over": over, "missing": missing, "extra": extra}


class _Lines(Protocol):
    """An NDJSON body, one callback per line."""

    def __init__(self, on_line: Any) -> None:
        self.on_line = on_line
        self.buffer = b""
        self.closed: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            if line.strip():
                self.on_line(json.loads(line))

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)


class Tails:
    """``GET /api/v0.1/docs?s=<sid>&format=ndjson`` on the tailor, one endless stream per sid."""

    def __init__(self, tailor_url: str, log: HitLog) -> None:
        self.tailor_url = tailor_url
        self.log = log
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self._streams: list[_Lines] = []

    async def open(self, sids: list[str]) -> None:
        """Open a tail per sid; returns once each has its first line (the tailor is subscribed)."""
        await gatherResults([self._open(sid) for sid in sids], consumeErrors=True)

    def _open(self, sid: str) -> Deferred[None]:
        ready: Deferred[None] = Deferred()

        def on_line(item: dict[str, Any]) -> None:
            if "subscription_id" in item:
                if not ready.called:
                    ready.callback(None)
            else:
                self.log.record(sid, (item,))

        def on_response(resp: Any) -> None:
            if resp.code != 200:
                ready.errback(RuntimeError(f"tail of {sid}: HTTP {resp.code}"))
                return
            stream = _Lines(on_line)
            self._streams.append(stream)
            resp.deliverBody(stream)

        url = f"{self.tailor_url}/api/v0.1/docs?s={quote(sid)}&format=ndjson"
        d = treq.get(url, unbuffered=True, pool=self.pool)
        d.addCallback(on_response)
        d.addErrback(lambda f: None if ready.called else ready.errback(f))
        return ready

    async def close(self) -> None:
        for stream in self._streams:
            if stream.transport is not None:
                stream.transport.stopProducing()
        await gatherResults([s.closed for s in self._streams], consumeErrors=True)
        self._streams = []
