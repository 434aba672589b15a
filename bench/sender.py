"""A sender that behaves like Logstash's ``http`` output with ``format => "json_batch"``.

A JSON array of B documents per POST, several requests in flight, and on
429 or 5xx (or a refused connection) the whole request is sent again after
``Retry-After`` or an exponential backoff, as Logstash does. Runs on the
Twisted reactor (``tests.wamp_client.on_reactor``); each request's body is
made just before it is sent, so the documents carry their POST time.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.web.client import HTTPConnectionPool

#: makes batch ``k``'s body, stamped with the wall-clock time it is sent
BodyFor = Callable[[int, float], bytes]
ATTEMPTS = 10


@dataclass
class SendStats:
    """What the senders saw: per-request latencies, the beater's answers, the batches it took."""

    latencies: list[float] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # answered 200
    docs: int = 0
    accepted: int = 0
    published: int = 0
    retries: int = 0
    retried_on: Counter[int] = field(default_factory=Counter)  # HTTP status (0: no answer) -> times
    errors: list[str] = field(default_factory=list)
    start: float = 0.0  # wall clock, like the documents' sent_at
    end: float = 0.0

    @property
    def docs_per_s(self) -> float:
        return self.docs / (self.end - self.start) if self.end > self.start else 0.0


class Sender:
    """POSTs batches to one ingest URL over a pool of persistent connections."""

    def __init__(self, url: str, body_for: BodyFor, size: int, connections: int) -> None:
        self.url = url
        self.body_for = body_for
        self.size = size
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = connections

    async def post(self, k: int, stats: SendStats) -> None:
        """Send batch ``k`` until the beater takes it (or ATTEMPTS are spent)."""
        backoff = 0.1
        for _attempt in range(ATTEMPTS):
            t0 = time.perf_counter()
            body = self.body_for(k, time.time())
            try:
                resp = await treq.post(
                    self.url,
                    data=body,
                    headers={"content-type": "application/json"},
                    pool=self.pool,
                    timeout=60,
                )
                payload = await resp.content()
            except Exception as exc:  # refused, reset, timed out: Logstash retries those too
                code, payload, retry_after = 0, str(exc).encode(), None
            else:
                code = resp.code
                retry_after = resp.headers.getRawHeaders("retry-after", [None])[0]
            if code == 200:
                answer = json.loads(payload)
                stats.latencies.append(time.perf_counter() - t0)
                stats.batches.append(k)
                stats.docs += self.size
                stats.accepted += answer["accepted"]
                stats.published += answer["published"]
                if answer["rejected"]:
                    stats.errors.append(f"rejected: {answer['rejected'][:3]}")
                return
            if code and code != 429 and code < 500:
                stats.errors.append(f"HTTP {code}: {payload[:200]!r}")
                return
            stats.retries += 1
            stats.retried_on[code] += 1
            wait = float(retry_after) if retry_after else backoff
            backoff = min(2 * backoff, 5.0)
            await deferLater(reactor, wait, lambda: None)
        stats.errors.append(f"batch {k}: gave up after {ATTEMPTS} attempts")

    async def closed_loop(self, first: int, concurrency: int, seconds: float) -> SendStats:
        """``concurrency`` requests in flight back to back, batches ``first``, ``first+1``, ... for ``seconds``."""
        stats = SendStats(start=time.time())
        deadline = stats.start + seconds
        numbers = itertools.count(first)

        async def worker() -> None:
            for k in numbers:  # coroutines interleave only at awaits: sharing the iterator is safe
                if time.time() > deadline:
                    return
                await self.post(k, stats)

        await gatherResults([ensureDeferred(worker()) for _ in range(concurrency)], consumeErrors=True)
        stats.end = time.time()
        return stats

    async def paced(
        self, first: int, docs_per_s: float, seconds: float, max_in_flight: int = 64
    ) -> SendStats:
        """Open loop: a request every ``size / docs_per_s`` seconds whatever the answers, for ``seconds``."""
        stats = SendStats(start=time.time())
        interval = self.size / docs_per_s
        pending: list[Deferred[None]] = []
        for i in itertools.count():
            due = stats.start + i * interval
            if due > stats.start + seconds:
                break
            if (delay := due - time.time()) > 0:
                await deferLater(reactor, delay, lambda: None)
            pending = [d for d in pending if not d.called]
            if len(pending) >= max_in_flight:
                stats.errors.append("paced sender fell behind (max in flight)")
                break
            pending.append(ensureDeferred(self.post(first + i, stats)))
        await gatherResults(pending, consumeErrors=True)
        stats.end = time.time()
        return stats

    async def close(self) -> None:
        await self.pool.closeCachedConnections()
