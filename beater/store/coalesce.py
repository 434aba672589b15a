"""Engine writes shared by everyone waiting for them: one request for many callers.

Registering a query is a write that must be visible to the next percolation,
so it needs a refresh; one write and one refresh per query (a translog sync
and a segment flush each) limit registration to about 15/s per index. A
Coalescer collects what callers submit while a flush is running and sends it
all in the next flush: the first caller is served at once, and under load the
requests grow instead of queueing up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs ``flush(items)`` at most once at a time, for every item submitted meanwhile.

    ``flush`` returns one result per item, in order: a value, or an exception
    that fails that item alone. If ``flush`` raises, every item of that flush
    fails with it. An item submitted while a flush runs always goes into a
    later flush, which starts after it was submitted.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R | Exception]]]) -> None:
        self._flush = flush
        self._running = False
        self._waiting: list[tuple[T, Deferred[R]]] = []

    def submit(self, item: T) -> Deferred[R]:
        d: Deferred[R] = Deferred()
        self._waiting.append((item, d))
        if not self._running:
            ensureDeferred(self._run())
        return d

    async def _run(self) -> None:
        self._running = True
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._flush([item for item, _ in batch])
                except Exception:
                    failure = Failure()
                    for _, d in batch:
                        d.errback(failure)
                    continue
                for (_, d), result in zip(batch, results, strict=True):
                    if isinstance(result, Exception):
                        d.errback(Failure(result))
                    else:
                        d.callback(result)
        finally:
            self._running = False
