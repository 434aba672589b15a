"""Query lifecycle: percolate only what someone listens to; forget what nobody wants.

A percolator that only grows makes every ingest slower. The router knows who
listens (crossbar's subscription meta API), so every beater:

* on ``wamp.subscription.on_create`` for ``docs-for-<sid>`` marks that query
  active at once (a subscriber is there, its hits must not be missed);
* every ``sweep_interval`` compares the router's subscriptions (on every
  router node: common/router_tier.py) with the
  stored queries (ids from ``wamp.subscription.list``; their topics from a
  map kept by the meta events ``on_create``/``on_delete``, looked up with
  ``wamp.subscription.get`` only for ids not heard of: see
  beater/queries/subscription_topics.py): an active query with no subscriber,
  registered or last seen active more than one interval ago, becomes
  inactive (no longer percolated) and idle since now; an inactive one with a
  subscriber becomes active; one idle for longer than ``grace`` is deleted (``describe_query`` then says
  ``no_such_query``; registering it again brings it back, same sid);
  fields that appeared in a document index meanwhile are added to its
  percolator index's mapping, and a shared percolator index near its field
  limit is rebuilt with only the fields its queries name
  (``beater/store/repair.py``; also once on joining, without holding the join).

Each node's map also tells the publisher which sids of other partitions a
client there (a browser, at the front) listens to (``subscribed_at``).

All writes are conditional on the document's seq_no as scanned, so any
number of beaters may sweep at once: the first write wins, the others
conflict and skip, and a registration or subscription racing a removal
always ends registered and active.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.interfaces import ISession
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

from beater.queries.subscription_topics import (
    Subscription,
    SubscriptionTopics,
    coverage,
)
from beater.store import QueryStore
from common.contract import TOPIC_PREFIX, WAMP_NO_SUCH_SUBSCRIPTION
from common.engine import EngineRejected, EngineUnavailable
from common.metrics import Metrics
from common.periodic import Periodic
from common.router_tier import RouterTier
from common.wamp import RouterUnavailable

log = Logger()

#: Lookups of unknown subscription ids in flight at once: a beater joining a
#: router with 10,000 subscriptions learns them without queueing 10,000 calls.
LOOKUP_CONCURRENCY = 32


@dataclass
class SweepResult:
    subscribed: int
    deactivated: int
    activated: int
    collected: int


class LookupsFailed(Exception):
    """Some subscriptions' topics could not be learned: this sweep deactivates nothing."""


class QueryLifecycle:
    def __init__(
        self,
        store: QueryStore,
        wamp: RouterTier,
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
        self.sweeps = Periodic(self._sweep_logged, interval, "lifecycle.sweep", clock)
        #: per router node, in partition order
        self.topics = [SubscriptionTopics() for _ in wamp.holders]
        metrics.counter(
            "lifecycle_lookups_total",
            "wamp.subscription.get calls by sweeps, by outcome: found, gone (unsubscribed meanwhile), failed.",
        )

    async def attach(self, node: int, session: ISession) -> None:
        """On (re)join of a node: a new router run has new subscription ids; follow them from now on.

        The front's targets and repairs are the beater's start-up work. Among several nodes,
        each also learns its subscriptions now, not at the first sweep: the publisher asks them.
        """
        self.topics[node] = topics = SubscriptionTopics()
        await session.subscribe(functools.partial(self._on_create, node), "wamp.subscription.on_create")
        await session.subscribe(functools.partial(self._on_delete, node), "wamp.subscription.on_delete")
        if len(self.topics) > 1:
            ensureDeferred(self._learn(node, session, topics))
        if node != 0:
            return
        try:  # targets registered through other beaters, before the first sweep
            await self.store.refresh_targets()
        except (EngineUnavailable, EngineRejected) as exc:
            log.warn("lifecycle.targets_refresh_failed", error=str(exc))
        # A shared index left at its field limit (by an older beater) is rebuilt now, not at
        # the first sweep; in the background: registrations and ingest go on meanwhile.
        ensureDeferred(self._repair())

    async def _repair(self) -> None:
        try:
            await self.store.repair_full_indices()
        except (EngineUnavailable, EngineRejected) as exc:
            log.warn("lifecycle.repair_failed", error=str(exc))
        except Exception:  # fire and forget: nobody else would see it
            log.failure("lifecycle.repair_failed", level=LogLevel.warn)

    async def _learn(self, node: int, session: ISession, topics: SubscriptionTopics) -> None:
        try:
            await self._listed(session, topics)
        except Exception as exc:  # the first sweep learns them
            log.warn("lifecycle.subscriptions_unknown", node=node, error=repr(exc))

    def subscribed_at(self, node: int, sid: str) -> bool:
        """Whether router node ``node`` has a subscription receiving ``sid``'s events."""
        return self.topics[node].covers(sid)

    def _on_create(self, node: int, _session_id: Any, details: Any = None, *_rest: Any) -> None:
        subscription = self.topics[node].learn(details)
        if subscription is not None and subscription.uri.startswith(TOPIC_PREFIX):
            ensureDeferred(self._touch(subscription.uri[len(TOPIC_PREFIX) :]))

    def _on_delete(self, node: int, _session_id: Any, sub_id: Any = None, *_rest: Any) -> None:
        self.topics[node].forget(sub_id)

    async def _touch(self, sid: str) -> None:
        try:
            await self.store.touch(sid)
        except (EngineUnavailable, EngineRejected) as exc:
            log.warn("lifecycle.touch_failed", sid=sid, error=str(exc))
        except Exception:  # fire and forget: nobody else would see it
            log.failure("lifecycle.touch_failed", sid=sid, level=LogLevel.warn)

    def start(self) -> None:
        self.sweeps.start()

    def stop(self) -> None:
        self.sweeps.stop()

    async def _sweep_logged(self) -> None:
        """Run one sweep; whatever goes wrong is one warning, and the next sweep runs as usual."""
        try:
            result = await self.sweep()
        except RouterUnavailable as exc:  # a router node is not joined
            log.debug("lifecycle.sweep_skipped", error=str(exc))
        except (EngineUnavailable, EngineRejected, ApplicationError, LookupsFailed) as exc:
            log.warn("lifecycle.sweep_failed", error=str(exc))
        except Exception:
            log.failure("lifecycle.sweep_failed", level=LogLevel.warn)
        else:
            if result.deactivated or result.activated or result.collected:
                log.info(
                    "lifecycle.swept",
                    subscribed=result.subscribed,
                    deactivated=result.deactivated,
                    activated=result.activated,
                    collected=result.collected,
                )

    async def subscribed_sids(self) -> tuple[set[str], frozenset[str]] | None:
        """(sids subscribed exactly, sid prefixes covered), or None if everything is covered.

        Asks every router node for the ids only; their topics come from the maps
        the meta events keep, and just the ids they lack are looked up. A node
        not joined: RouterUnavailable (who listens there is unknown).
        """
        sessions = [holder.require() for holder in self.wamp.holders]
        subscriptions: list[Subscription] = []
        for node, session in enumerate(sessions):
            # the map of this session, even if a rejoin replaces it meanwhile
            subscriptions += await self._listed(session, self.topics[node])
        return coverage(subscriptions)

    async def _listed(self, session: ISession, topics: SubscriptionTopics) -> list[Subscription]:
        """Every subscription on ``session``'s node, learning into ``topics`` the ones it lacked."""
        known_before = topics.ids()
        listing = await session.call("wamp.subscription.list")
        resolution = topics.resolve(known_before, listing)
        looked_up = await self._look_up(session, topics, resolution.unknown)
        return [*resolution.known, *looked_up]

    async def _look_up(
        self, session: ISession, topics: SubscriptionTopics, ids: list[int]
    ) -> list[Subscription]:
        """``wamp.subscription.get`` for each id, at most LOOKUP_CONCURRENCY at a time.

        An id gone meanwhile has no subscriber. Any other failure leaves a
        subscription whose topic is unknown, and a sweep that cannot tell
        whether a query has a subscriber must not deactivate it: LookupsFailed
        (after every lookup ended, so none is left unhandled); what was
        learned is kept, the next sweep asks only for the rest.
        """
        limit = DeferredSemaphore(LOOKUP_CONCURRENCY)
        found: list[Subscription] = []
        errors: list[str] = []

        async def one(sub_id: int) -> None:
            try:
                details = await session.call("wamp.subscription.get", sub_id)
            except ApplicationError as err:
                if err.error == WAMP_NO_SUCH_SUBSCRIPTION:  # gone meanwhile: no subscriber, not a failure
                    self.metrics.inc("lifecycle_lookups_total", outcome="gone")
                    return
                errors.append(f"{sub_id}: {err.error}")
            except Exception as exc:  # collected and raised once below, never left unhandled
                errors.append(f"{sub_id}: {exc!r}")
            else:
                subscription = topics.learn(details)
                if subscription is not None:
                    found.append(subscription)
                    self.metrics.inc("lifecycle_lookups_total", outcome="found")
                    return
                errors.append(f"{sub_id}: unexpected answer {details!r}")
            self.metrics.inc("lifecycle_lookups_total", outcome="failed")

        await gatherResults([limit.run(lambda sub_id: Deferred.fromCoroutine(one(sub_id)), i) for i in ids])
        if errors:
            raise LookupsFailed(
                f"{len(errors)} of {len(ids)} subscription lookups failed, first: {errors[0]}"
            )
        return found

    async def sweep(self) -> SweepResult:
        """One reconciliation of the stored queries with the router's subscriptions.

        A pattern subscription covering every ``docs-for-`` topic only stops
        deactivation: every inactive query is then subscribed and activated,
        idle ones are collected, mappings and targets are brought up to date.

        A router node not joined (RouterUnavailable, raised after): who listens
        there is unknown, so nothing is deactivated, activated or collected;
        the engine's side (mappings, repairs, targets) is kept up all the same,
        for the partitions that still work.
        """
        # Read the clock *before* asking the router: a subscription made after
        # this instant is either in the listing or has touched its query later.
        now_ms = int(time.time() * 1000)
        try:
            listening = await self.subscribed_sids()
        except RouterUnavailable:
            await self._maintain()
            raise
        self.metrics.inc("lifecycle_sweeps_total")
        everything = listening is None
        subscribed, prefixes = (set(), frozenset()) if listening is None else listening
        cutoff = now_ms - int(self.interval * 1000)
        deactivated = 0
        if not everything:
            deactivated = await self.store.deactivate_unsubscribed(subscribed, cutoff, now_ms, prefixes)
        self.metrics.inc("queries_deactivated_total", deactivated)
        activated = await self.store.activate_subscribed(subscribed, now_ms, prefixes, everything=everything)
        collected = await self.store.collect_idle(now_ms - int(self.grace * 1000))
        await self._maintain()
        self.metrics.inc("queries_collected_total", collected)
        return SweepResult(-1 if everything else len(subscribed), deactivated, activated, collected)

    async def _maintain(self) -> None:
        """The engine's side of a sweep, whoever listens: new document fields mapped, full shared
        indices rebuilt, an older layout taken in, the targets re-read."""
        await self.store.sync_mappings()
        await self.store.repair_full_indices()
        await self.store.migrate_layout()  # a no-op unless the engine failed it at start-up
        await self.store.refresh_targets()
