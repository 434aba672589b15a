"""The query store: registered queries kept in the engine's shared percolator index.

One module per job: ``schema`` (the percolator index's fields and mapping,
the stored query document), ``shared_indices`` (the shared indices exist,
their limits and every target's filtered alias), ``mappings`` (which shared
index takes a query, and mapping what its queries and documents use, with
``covered_fields``, ``properties`` and ``field_limit``), ``migration`` (the
older per-target layout's queries taken in), ``repair`` (an index near its
field limit rebuilt), ``registry`` (register, describe; writes shared
through ``coalesce``) and ``sweeps`` (the lifecycle's scan and conditional
writes), ``targets`` (which targets cover an ingested index), ``budget``
(new fields per target and reader). ``QueryStore`` is the one object the
beater holds.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.logger import Logger

from beater.store.events import StoreEvents
from beater.store.mappings import PercolatorIndices
from beater.store.migration import LayoutMigration
from beater.store.registry import QueryRegistry
from beater.store.repair import IndexRepair
from beater.store.schema import shared_number
from beater.store.sweeps import QuerySweeps
from beater.store.targets import TargetSet
from common.engine import Engine
from common.metrics import Metrics
from common.query.limits import QueryLimits
from common.query.targets import InvalidTarget, parse_target

log = Logger()

__all__ = ["QueryStore"]


class QueryStore:
    """Registration, lookup and lifecycle of the stored queries."""

    def __init__(
        self,
        engine: Engine,
        prefix: str,
        limits: QueryLimits | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.prefix = prefix
        #: what the store and the percolator count for /metrics
        self.events = StoreEvents(metrics)
        self.indices = PercolatorIndices(engine, prefix, shards, replicas, self.events)
        self.migration = LayoutMigration(self.indices)
        #: whether the older layout's queries were taken in (``migrate_layout``)
        self.layout_migrated = False
        #: the percolator reaches the store's events through the targets
        self.targets = TargetSet(engine, prefix, self.events)
        self.registry = QueryRegistry(engine, self.indices, self.targets, limits or QueryLimits())
        self.sweeps = QuerySweeps(engine, prefix)
        #: the lifecycle's sweep steps are the sweeps' own, with their signatures and docstrings
        self.deactivate_unsubscribed = self.sweeps.deactivate_unsubscribed
        self.activate_subscribed = self.sweeps.activate_subscribed
        self.collect_idle = self.sweeps.collect_idle
        self.repair = IndexRepair(engine, self.indices, self.events)

    async def register(self, index: str, query: object, principal: str | None = None) -> str:
        """Store the query (idempotent) and return its sid; visible to the next percolation.

        ``principal``: the reader registering it, where known (its field budget).
        """
        sid = await self.registry.register(index, query, principal)
        await self.targets.look_at(parse_target(index).canonical, time.monotonic())
        return sid

    async def describe(self, sid: str) -> dict[str, Any] | None:
        """``{"sid", "index", "query"}`` of a registered query, or None."""
        return await self.registry.describe(sid)

    async def touch(self, sid: str) -> bool:
        """Mark a query active now (a subscription appeared); False if unknown.

        A query on a target registered through another beater: learn the
        target now, so this beater matches it from the subscription on.
        """
        found = await self.sweeps.find(sid)
        if found is None:
            return False
        pindex, active, target = found
        if target is not None:  # ``add`` is a no-op for what is known already
            n = shared_number(self.prefix, pindex)
            try:
                if n is not None:
                    self.targets.add(parse_target(target), n)
            except InvalidTarget:
                pass
        await self.sweeps.touch(sid, (pindex, active))
        return True

    async def migrate_layout(self) -> None:
        """Take in the queries of the older one-index-per-target layout (``beater/store/migration.py``), once.

        Start-up work: the beater runs it before it serves. Should the engine
        not answer then, the lifecycle's next sweep runs it; once it has run,
        it is never run again. EngineUnavailable / EngineRejected when the
        engine fails it.
        """
        if self.layout_migrated:
            return
        copied = await self.migration.migrate()
        self.layout_migrated = True
        if copied:
            log.info("store.migrated", queries=copied)

    async def refresh_targets(self) -> bool:
        """Re-read targets, aliases and data streams: on joining, at every sweep, after a bulk's new names."""
        return await self.targets.refresh()

    async def sync_mappings(self) -> int:
        return await self.indices.sync_mappings(list(self.targets.registered()))

    async def repair_full_indices(self) -> int:
        """Rebuild shared indices near their field limit with only the fields their queries name
        (``beater/store/repair.py``); the number rebuilt."""
        return await self.repair.run()
