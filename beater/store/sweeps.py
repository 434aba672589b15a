"""The lifecycle's writes: scan the stored queries, then change them with conditional bulk writes.

``beater/queries/lifecycle.py`` decides *what* to change (from the router's
subscriptions); this module does it so that several beaters stay consistent:
every write is conditional on the sequence number the scan saw, so a
registration or subscription that lands in between wins.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred

from beater.store.coalesce import Coalescer
from beater.store.schema import (
    ACTIVE_FIELD,
    IDLE_SINCE_FIELD,
    LAST_ACTIVE_FIELD,
    SID_FIELD,
    SIGNPOST_FIELD,
    TARGET_FIELD,
    active_doc,
)
from common.engine import Engine

#: Conditional writes per bulk request in a sweep: each request stays well
#: inside the engine timeout even with 10,000 queries to change.
_BULK_CHUNK = 500
#: Sids per ``ids`` search of a grouped lookup (well inside index.max_result_window).
_FIND_CHUNK = 2000


def now_ms() -> int:
    return int(time.time() * 1000)


class QuerySweeps:
    """Activation, deactivation and collection of the stored queries of every percolator index."""

    def __init__(self, engine: Engine, prefix: str) -> None:
        self.engine = engine
        self.prefix = prefix
        self._refreshers: dict[str, Coalescer[None, None]] = {}
        self._finder: Coalescer[str, tuple[str, bool, str | None] | None] = Coalescer(self._find_all)

    def _refresh(self, pindex: str) -> Deferred[None]:
        """Wait for a refresh of ``pindex`` that covers the writes done so far (shared by all callers)."""
        refresher = self._refreshers.get(pindex)
        if refresher is None:

            async def refresh(waiting: list[None]) -> list[Exception | None]:
                await self.engine.run(lambda es: es.indices.refresh(index=pindex))
                return [None] * len(waiting)

            refresher = self._refreshers[pindex] = Coalescer(refresh)
        return refresher.submit(None)

    async def _update(self, pindex: str, sid: str, doc: dict[str, Any], refresh: bool = True) -> None:
        # retry_on_conflict: every beater touches a query when its subscription
        # appears; they all write the same fields, whichever comes last is right.
        await self.engine.run(
            lambda es: es.update(index=pindex, id=sid, body={"doc": doc}, ignore=404, retry_on_conflict=3)
        )
        if refresh:
            await self._refresh(pindex)

    async def find(self, sid: str) -> tuple[str, bool, str | None] | None:
        """(percolator index, active, canonical target) of a stored query, or None.

        Looked up together with every other sid asked for meanwhile (one ``ids``
        search per group): each new subscription asks, and 100,000 of them (a
        tailor fleet reconnecting) were 100,000 searches queued before anything
        else the beater asks of the engine (docs/performance.md).
        """
        return await self._finder.submit(sid)

    async def _find_all(self, sids: list[str]) -> list[tuple[str, bool, str | None] | None]:
        wanted = sorted(set(sids))

        def search(es: Any) -> list[dict[str, Any]]:
            hits: list[dict[str, Any]] = []
            for start in range(0, len(wanted), _FIND_CHUNK):
                chunk = wanted[start : start + _FIND_CHUNK]
                hits += es.search(
                    index=self.prefix + "*",
                    body={
                        "query": {"ids": {"values": chunk}},
                        "_source": [ACTIVE_FIELD, TARGET_FIELD],
                        "size": len(chunk) * 2,  # a sid may be in two indices (placed again)
                    },
                    ignore_unavailable=True,
                    allow_no_indices=True,
                )["hits"]["hits"]
            return hits

        found: dict[str, tuple[str, bool, str | None]] = {}
        for hit in await self.engine.run(search):
            source = hit.get("_source", {})
            target = source.get(TARGET_FIELD)
            found.setdefault(
                str(hit["_id"]),
                (
                    str(hit["_index"]),
                    bool(source.get(ACTIVE_FIELD, False)),
                    target if isinstance(target, str) else None,
                ),
            )
        return [found.get(sid) for sid in sids]

    async def touch(self, sid: str, found: tuple[str, bool]) -> None:
        """Mark a query active now (a subscription appeared); ``found`` is what ``find`` said."""
        pindex, active = found
        # Already active (the usual case right after registering): percolation
        # sees no change, so skip the costly refresh. The write still bumps the
        # seq_no, which is what makes a racing sweep's conditional write skip it.
        await self._update(pindex, sid, active_doc(now_ms()), refresh=not active)

    async def _scan(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Every query document matching ``query``, with its seq_no for conditional writes."""
        found: list[dict[str, Any]] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": query,
                "_source": False,
                "seq_no_primary_term": True,
                "size": 10_000,
                "sort": [{SID_FIELD: "asc"}],
            }
            if after is not None:
                body["search_after"] = after

            def search(es: Any, body: dict[str, Any] = body) -> dict[str, Any]:
                return es.search(
                    index=self.prefix + "*", body=body, ignore_unavailable=True, allow_no_indices=True
                )

            hits = (await self.engine.run(search))["hits"]["hits"]
            found.extend(hits)
            if len(hits) < 10_000:
                return found
            after = hits[-1]["sort"]

    async def _apply(self, hits: list[dict[str, Any]], action: str, doc: dict[str, Any] | None) -> int:
        """Conditional bulk update/delete: a document changed since the scan is left alone.

        That is what keeps several beaters consistent: a registration or
        subscription that lands between our scan and our write bumps the
        document's seq_no, so our write is refused as a conflict and skipped.
        """
        done = 0
        for start in range(0, len(hits), _BULK_CHUNK):
            done += await self._apply_chunk(hits[start : start + _BULK_CHUNK], action, doc)
        if done:
            # One refresh for the whole sweep step: percolation sees it at once.
            await self.engine.run(lambda es: es.indices.refresh(index=self.prefix + "*"))
        return done

    async def _apply_chunk(self, hits: list[dict[str, Any]], action: str, doc: dict[str, Any] | None) -> int:
        lines: list[dict[str, Any]] = []
        for hit in hits:
            meta = {
                "_index": hit["_index"],
                "_id": hit["_id"],
                "if_seq_no": hit["_seq_no"],
                "if_primary_term": hit["_primary_term"],
            }
            lines.append({action: meta})
            if doc is not None:
                lines.append({"doc": doc})

        def bulk(es: Any) -> dict[str, Any]:
            return es.bulk(body=lines)

        resp = await self.engine.run(bulk)
        done = 0
        for item in resp.get("items", []):
            result = next(iter(item.values()))
            if 200 <= int(result.get("status", 500)) < 300:
                done += 1
        return done

    async def deactivate_unsubscribed(
        self, subscribed: set[str], cutoff_ms: int, now_ms: int, prefixes: frozenset[str] = frozenset()
    ) -> int:
        """Active queries without a subscriber, quiet since ``cutoff_ms``, stop being percolated.

        ``prefixes``: sid prefixes a pattern subscription covers (``docs-for-ab``).
        """
        listened: list[dict[str, Any]] = [{"prefix": {SID_FIELD: p}} for p in sorted(prefixes)]
        if subscribed:
            listened.append({"ids": {"values": sorted(subscribed)}})
        query = {
            "bool": {
                "filter": [
                    {"term": {ACTIVE_FIELD: True}},
                    {"range": {LAST_ACTIVE_FIELD: {"lt": cutoff_ms}}},
                ],
                "must_not": listened,
            }
        }
        return await self._apply(
            await self._scan(query), "update", {ACTIVE_FIELD: False, IDLE_SINCE_FIELD: now_ms}
        )

    async def activate_subscribed(
        self,
        subscribed: set[str],
        now_ms: int,
        prefixes: frozenset[str] = frozenset(),
        *,
        everything: bool = False,
    ) -> int:
        """Inactive queries that have a subscriber again are percolated again.

        ``everything``: a pattern subscription covers every sid.
        """
        inactive = {"term": {ACTIVE_FIELD: False}}
        listened: list[dict[str, Any]] = [{"prefix": {SID_FIELD: p}} for p in sorted(prefixes)]
        if subscribed:
            listened.append({"ids": {"values": sorted(subscribed)}})
        if everything:
            # Not the signposts (schema.py): nobody subscribes to them, they are only to be collected.
            query: dict[str, Any] = {
                "bool": {"filter": [inactive], "must_not": [{"exists": {"field": SIGNPOST_FIELD}}]}
            }
        elif not listened:
            return 0
        else:
            query = {"bool": {"filter": [inactive], "should": listened, "minimum_should_match": 1}}
        return await self._apply(await self._scan(query), "update", active_doc(now_ms))

    async def collect_idle(self, idle_before_ms: int) -> int:
        """Delete queries inactive since before ``idle_before_ms``."""
        query = {
            "bool": {
                "filter": [
                    {"term": {ACTIVE_FIELD: False}},
                    {"range": {IDLE_SINCE_FIELD: {"lt": idle_before_ms}}},
                ]
            }
        }
        return await self._apply(await self._scan(query), "delete", None)
