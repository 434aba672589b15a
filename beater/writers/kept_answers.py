"""The engine's answers about names (where an alias writes, which pipelines an index runs), kept briefly.

A shipper writes the same names request after request; asking the engine
each time would double its requests. So the names a request needs are
asked in one request for those not known or older than ``ttl`` seconds,
and the answers kept; past ``most`` names the memory starts afresh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IReactorTime

T = TypeVar("T")


class KeptAnswers(Generic[T]):
    """``ask(names) -> {name: answer}`` for the stale names only; ``default`` for a name it leaves out."""

    def __init__(
        self,
        ask: Callable[[list[str]], Awaitable[dict[str, T]]],
        default: T,
        clock: IReactorTime,
        ttl: float,
        most: int = 10_000,
    ) -> None:
        self.ask = ask
        self.default = default
        self.clock = clock
        self.ttl = ttl
        self.most = most
        #: name -> (its answer, when asked)
        self.known: dict[str, tuple[T, float]] = {}

    async def of(self, names: Iterable[str]) -> dict[str, T]:
        """The answer for each of ``names``: kept, or asked now in one request."""
        now = self.clock.seconds()
        wanted = sorted(set(names))
        stale = [n for n in wanted if n not in self.known or now - self.known[n][1] > self.ttl]
        if stale:
            found = await self.ask(stale)
            if len(self.known) + len(stale) > self.most:
                self.known.clear()
            for name in stale:
                self.known[name] = (found.get(name, self.default), now)
        return {n: self.known[n][0] for n in wanted}
