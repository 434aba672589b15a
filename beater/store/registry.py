"""Register and describe queries: one document per query in a shared percolator index, id = sid.

Stored in the engine, queries survive a beater restart and are shared by any
number of beaters. A query document's id is its sid, so registering twice is
an idempotent overwrite.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from beater.store.budget import FieldBudget
from beater.store.coalesce import Coalescer
from beater.store.mappings import PercolatorIndices
from beater.store.schema import (
    META_FIELD,
    QUERY_FIELD,
    TARGET_FIELD,
    query_document,
    shared_number,
    signpost_document,
    signpost_id,
)
from beater.store.sweeps import now_ms
from beater.store.targets import TargetSet
from common.engine import Engine, EngineRejected, bulk_item_error
from common.query.fields import query_fields
from common.query.limits import QueryLimits
from common.query.prepared import prepare
from common.query.targets import parse_target, percolator_suffix

log = Logger()


def consistent(meta: dict[str, Any], target: object) -> bool:
    """Whether a query document's description names the target its matching uses.

    Who may subscribe is decided from the description (``describe_query``);
    which documents match, from ``estrom_target``: they must be one target.
    (The query part may differ from the sid's after a change of canonical
    form: that is the tailor's ``registered_as`` case, not an access one.)
    """
    try:
        return parse_target(str(meta["index"])).canonical == target
    except (KeyError, ValueError, TypeError):
        return False


class QueryRegistry:
    """Registration and lookup of percolator queries."""

    def __init__(
        self, engine: Engine, indices: PercolatorIndices, targets: TargetSet, limits: QueryLimits
    ) -> None:
        self.engine = engine
        self.indices = indices
        self.targets = targets
        self.limits = limits
        self.budget = FieldBudget(indices.prefix, limits.fields_per_target, limits.fields_per_principal)
        self._writers: dict[str, Coalescer[tuple[str, dict[str, Any]], None]] = {}

    def _writer(self, pindex: str) -> Coalescer[tuple[str, dict[str, Any]], None]:
        """Stores query documents of ``pindex``: concurrent registrations share one bulk and refresh."""
        writer = self._writers.get(pindex)
        if writer is None:
            n = shared_number(self.indices.prefix, pindex)
            assert n is not None

            def write(es: Any, docs: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], bool]:
                # The index may have been deleted under us (an operator, a
                # snapshot restore): _bulk would then create it with dynamic
                # mappings and no percolator field, matching nothing. Create it
                # properly, with the fields of these queries, before writing.
                vanished = not es.indices.exists(index=pindex)
                if vanished:
                    self.indices.create_now(es, n, force=True)
                    for _sid, doc in docs:
                        if TARGET_FIELD not in doc:
                            continue  # a signpost names no field
                        target = parse_target(doc[TARGET_FIELD])
                        self.indices.place_now(es, target, query_fields(doc[QUERY_FIELD]))
                lines: list[dict[str, Any]] = []
                for sid, doc in docs:
                    lines += [{"index": {"_index": pindex, "_id": sid}}, doc]
                # refresh: every query takes part in the very next percolation.
                return es.bulk(body=lines, refresh="true"), vanished

            async def store(docs: list[tuple[str, dict[str, Any]]]) -> list[Exception | None]:
                resp, vanished = await self.engine.run(lambda es: write(es, docs))
                if vanished:  # what this beater knew about it is stale
                    self.indices.forget(pindex)
                return [bulk_item_error(item) for item in resp["items"]]

            writer = self._writers[pindex] = Coalescer(store)
        return writer

    async def register(self, index: str, query: object, principal: str | None = None) -> str:
        """Store the query (idempotent) and return its sid; visible to the next percolation.

        ``index`` is a read target (raises InvalidTarget); the canonical
        target is part of the sid and what ``describe`` returns. ``principal``:
        the reader registering it, where known (its field budget). Over a
        limit: LimitExceeded (an InvalidQuery) naming it.
        """
        target = parse_target(index)
        prepared = prepare(query, self.limits)
        budget = self.budget
        sid = prepared.sid(target.canonical)
        for attempt in (1, 2):
            n, new = await self.indices.place(
                target,
                prepared.fields,
                counted=lambda new: budget.counted(target.canonical, principal, new),
                admit=lambda es, new: budget.check_now(es, target.canonical, principal, new),
            )
            now = now_ms()
            # Storing the query is its validation: the engine parses a percolator query as it
            # indexes it, and a query it cannot parse fails its bulk item alone, with the
            # parser's reason (EngineRejected 400: invalid_query), leaving nothing stored.
            try:
                await self._writer(self.indices.name(n)).submit(
                    (sid, query_document(target.canonical, prepared, now, new, principal))
                )
                break
            except EngineRejected as exc:
                # What this beater knew of the index's fields is stale (it was rebuilt, or
                # deleted and made again): map them again, once.
                if attempt == 2 or "No field mapping can be found" not in exc.reason:
                    raise
                self.indices.drop_fits(target, n)
        if n > 0:  # placed apart: other beaters must find it before they learn of it (signpost_document)
            key = percolator_suffix(target)
            signpost = signpost_document(target.canonical, n, key, now)
            await self._writer(self.indices.name(0)).submit((signpost_id(n, key), signpost))
        await self.indices.ensure_alias(target, n)
        self.targets.add(target, n)
        return sid

    async def describe(self, sid: str) -> dict[str, Any] | None:
        """``{"sid", "index", "query"}`` of a registered query, or None."""
        pattern = self.indices.prefix + "*"

        def find(es: Any) -> dict[str, Any]:
            return es.search(
                index=pattern,
                body={"query": {"ids": {"values": [sid]}}, "_source": [META_FIELD, TARGET_FIELD], "size": 1},
                ignore_unavailable=True,
                allow_no_indices=True,
            )

        resp = await self.engine.run(find)
        hits = resp.get("hits", {}).get("hits", [])
        if not hits:
            return None
        # A read: it does not keep a query alive (registering or subscribing does).
        source = hits[0]["_source"]
        meta = source.get(META_FIELD) or {}
        if not consistent(meta, source.get(TARGET_FIELD)):
            # What decides matching (estrom_target) and what decides access (this answer) must
            # be one target: a document where they differ was not written by a beater.
            log.warn("query.inconsistent_document", sid=sid)
            return None
        return {"sid": sid, "index": meta["index"], "query": meta["query"]}
