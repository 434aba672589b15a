"""Query lifecycle: percolate only what someone listens to; forget what nobody wants.

A percolator that only grows makes every ingest slower. The router knows who
listens (crossbar's subscription meta API), so every beater:

* on ``wamp.subscription.on_create`` for ``docs-for-<sid>`` marks that query
  active at once (a subscriber is there, its hits must not be missed);
* every ``sweep_interval`` compares the router's subscriptions with the
  stored queries: an active query with no subscriber, registered or last seen
  active more than one interval ago, becomes inactive (no longer percolated)
  and idle since now; an inactive one with a subscriber becomes active; one
  idle for longer than ``grace`` is deleted (``describe_query`` then says
  ``no_such_query``; registering it again brings it back, same sid);
  fields that appeared in a document index meanwhile are added to its
  percolator index's mapping.

All writes are conditional on the document's seq_no as scanned, so any
number of beaters may sweep at once: the first write wins, the others
conflict and skip, and a registration or subscription racing a removal
always ends registered and active.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from autobahn.wamp.interfaces import ISession
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from beater.query_store import QueryStore
from common.engine import EngineRejected, EngineUnavailable
from common.errors import TOPIC_PREFIX
from common.metrics import Metrics
from common.wamp import RouterUnavailable, SessionHolder

log = Logger()


@dataclass
class SweepResult:
    subscribed: int
    deactivated: int
    activated: int
    collected: int


class QueryLifecycle:
    def __init__(
        self,
        store: QueryStore,
        wamp: SessionHolder,
        clock: IReactorTime,
        metrics: Metrics,
        *,
        grace: float,
        interval: float,
    ) -> None:
        self.store = store
        self.wamp = wamp
        self.clock = clock
        self.metrics = metrics
        self.grace = grace
        self.interval = interval
        self._loop: LoopingCall | None = None
        self._sweeping = False

    async def attach(self, session: ISession) -> None:
        """On (re)join: follow subscription creation on the router."""
        await session.subscribe(self._on_create, "wamp.subscription.on_create")

    def _on_create(self, _session_id: Any, details: Any = None, *_rest: Any) -> None:
        uri = details.get("uri") if isinstance(details, dict) else None
        if isinstance(uri, str) and uri.startswith(TOPIC_PREFIX):
            sid = uri[len(TOPIC_PREFIX) :]
            ensureDeferred(self._touch(sid))

    async def _touch(self, sid: str) -> None:
        try:
            await self.store.touch(sid)
        except (EngineUnavailable, EngineRejected) as exc:
            log.warn("lifecycle.touch_failed", sid=sid, error=str(exc))

    def start(self) -> None:
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        if self._sweeping:
            return
        ensureDeferred(self._sweep_logged())

    async def _sweep_logged(self) -> None:
        self._sweeping = True
        try:
            result = await self.sweep()
        except RouterUnavailable as exc:
            log.debug("lifecycle.sweep_skipped", error=str(exc))
        except (EngineUnavailable, EngineRejected) as exc:
            log.warn("lifecycle.sweep_failed", error=str(exc))
        except Exception:
            log.failure("lifecycle.sweep_failed")
        else:
            if result.deactivated or result.activated or result.collected:
                log.info(
                    "lifecycle.swept",
                    subscribed=result.subscribed,
                    deactivated=result.deactivated,
                    activated=result.activated,
                    collected=result.collected,
                )
        finally:
            self._sweeping = False

    async def subscribed_sids(self) -> tuple[set[str], frozenset[str]] | None:
        """(sids subscribed exactly, sid prefixes covered by prefix subscriptions).

        None when a pattern subscription covers every ``docs-for-*`` topic
        (a prefix of ``docs-for-`` itself, or the one-part wildcard ``""``).
        """
        session = self.wamp.require()
        listing = await session.call("wamp.subscription.list")
        exact = listing.get("exact", []) or []
        patterns = [(kind, i) for kind in ("prefix", "wildcard") for i in listing.get(kind, []) or []]
        details = await gatherResults(
            [session.call("wamp.subscription.get", i) for i in exact]
            + [session.call("wamp.subscription.get", i) for _, i in patterns]
        )
        sids: set[str] = set()
        prefixes: set[str] = set()
        for (kind, _), d in zip([("exact", i) for i in exact] + patterns, details, strict=True):
            uri = str((d or {}).get("uri", "")) if isinstance(d, dict) else ""
            if kind == "prefix" and TOPIC_PREFIX.startswith(uri):
                return None
            if kind == "wildcard" and uri == "":
                return None
            if not uri.startswith(TOPIC_PREFIX) or (kind == "wildcard" and "." in uri):
                continue
            (prefixes if kind == "prefix" else sids).add(uri[len(TOPIC_PREFIX) :])
        return sids, frozenset(prefixes)

    async def sweep(self) -> SweepResult:
        """One reconciliation of the stored queries with the router's subscriptions."""
        # Read the clock *before* asking the router: a subscription made after
        # this instant is either in the listing or has touched its query later.
        now_ms = int(time.time() * 1000)
        listening = await self.subscribed_sids()
        self.metrics.inc("lifecycle_sweeps_total")
        if listening is None:
            return SweepResult(-1, 0, 0, 0)
        subscribed, prefixes = listening
        cutoff = now_ms - int(self.interval * 1000)
        deactivated = await self.store.deactivate_unsubscribed(subscribed, cutoff, now_ms, prefixes)
        self.metrics.inc("queries_deactivated_total", deactivated)
        activated = await self.store.activate_subscribed(subscribed, now_ms, prefixes)
        collected = await self.store.collect_idle(now_ms - int(self.grace * 1000))
        await self.store.sync_mappings()
        self.metrics.inc("queries_collected_total", collected)
        return SweepResult(len(subscribed), deactivated, activated, collected)
