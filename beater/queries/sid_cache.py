"""``describe_query`` without a search per call: unknown sids remembered briefly, lookups rationed.

A describe is one search of the query store. Asked for sids nobody
registered, the answer is the same "no such query" each time: so a sid
found unknown is remembered for ``ESTROM_UNKNOWN_SID_TTL`` seconds (at most
``ESTROM_UNKNOWN_SID_CACHE`` of them, the oldest forgotten first) and asked
again only after that. Registering a sid through this beater forgets it at
once, also while a lookup of it is in flight (its answer is then not
remembered); registered through another beater, a sid this one found
unknown a moment before is unknown here for at most the TTL.

Concurrent describes of one sid share one search. A search a reader's
call would start (a WAMP caller that is not a principal) is first admitted
by the router (``estrom.router.admit(caller, "lookup", sid)``): the
router's per-identity ``ESTROM_QUOTA_DESCRIBES_*`` bucket, over which the
call fails with ``com.estrom.error.quota_exceeded``. Answers from memory
cost nothing and are not counted.

Metrics (the beater's registry): ``estrom_beater_sid_lookups_total{outcome}``
(``found``, ``unknown``: searches; ``remembered``: answered from memory;
``shared``: joined a search in flight), ``estrom_beater_unknown_sids``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from common.config import Settings
from common.expiring_set import ExpiringSet
from common.metrics import Metrics

Found = dict[str, Any] | None


class Store(Protocol):
    async def describe(self, sid: str) -> Found: ...


class SidCache:
    """The beater's describes, through the memory of unknown sids."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.unknown = ExpiringSet(settings.unknown_sid_ttl, settings.unknown_sid_cache, clock)
        #: sid -> the callers waiting for the search in flight (besides the one that started it)
        self._flights: dict[str, list[Deferred[Found]]] = {}
        self._registered_in_flight: set[str] = set()
        metrics.counter(
            "sid_lookups_total",
            "describe_query lookups: found, unknown (each a search), remembered (answered from "
            "memory of unknown sids), shared (joined a search in flight).",
            labels=("outcome",),
        )
        metrics.gauge("unknown_sids", "Sids remembered as unknown.", lambda: len(self.unknown))

    def registered(self, sid: str) -> None:
        """``sid`` was just registered: never answer "unknown" for it from memory."""
        self.unknown.discard(sid)
        if sid in self._flights:
            self._registered_in_flight.add(sid)

    async def describe(self, sid: str, admit: Callable[[], Awaitable[Any]] | None = None) -> Found:
        """The stored query, or None; ``admit`` is awaited before a search is started for it
        (and raises to refuse)."""
        for attempt in (0, 1):
            if sid in self.unknown:
                self.metrics.inc("sid_lookups_total", outcome="remembered")
                return None
            waiters = self._flights.get(sid)
            if waiters is not None:
                self.metrics.inc("sid_lookups_total", outcome="shared")
                waiter: Deferred[Found] = Deferred()
                waiters.append(waiter)
                return await waiter
            if attempt == 0 and admit is not None:
                await admit()  # meanwhile another caller may have started the search: look again
        return await self._search(sid)

    async def _search(self, sid: str) -> Found:
        waiters: list[Deferred[Found]] = []
        self._flights[sid] = waiters
        try:
            found = await self.store.describe(sid)
        except BaseException:
            failure = Failure()
            self._land(sid)
            for waiter in waiters:
                waiter.errback(failure)
            raise
        if self._land(sid) and found is None:
            self.unknown.add(sid)
        self.metrics.inc("sid_lookups_total", outcome="unknown" if found is None else "found")
        for waiter in waiters:
            waiter.callback(found)
        return found

    def _land(self, sid: str) -> bool:
        """The search of ``sid`` is over; False if the sid was registered while it ran."""
        del self._flights[sid]
        registered = sid in self._registered_in_flight
        self._registered_in_flight.discard(sid)
        return not registered
