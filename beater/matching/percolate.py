"""Percolation: which registered queries match each document of a batch.

Two request shapes exist, measured by the retired percolate-modes study
(docs/performance.md, "Answered questions"; figures in docs/architecture.md;
the choice between them is ``beater/matching/percolate_shape.py``'s):

* ``documents``: one percolate query with a ``documents`` array; matches come
  back per stored query with ``_percolator_document_slot``;
* ``msearch``: one single-document percolate search per document in one
  ``_msearch`` request; an item that fails fails alone.

Measured on 7.17: ``documents`` wins from about 100 documents on (2-7x at
1,000) and keeps scaling, close to raw ``_bulk`` throughput with few queries.
Below that either may win by 2x, depending on the queries and on how many
each document matches. So ``auto`` uses ``documents`` from
``documents_min`` on and, below it, whichever shape it measured to cost less
(``beater/matching/percolate_shape.py``).

Either way the request searches the shared percolator index (more only when
targets disagree on a field's type, ``beater/store/mappings.py``), filtered
on the targets covering the batch's index (``beater/store/targets.py``):
one in-memory index of the batch, whatever the number of targets. Queries
registered since shortly before this beater last read the targets are
percolated whatever their target, and kept when their target covers the
index (``admits``): another beater's new target is matched from its first
batch on.

Whichever is used, a batch the engine refuses as a whole (one document that
cannot be parsed against the mapping) is retried item by item through
``_msearch`` so only the offending documents are rejected (what a refusal
means: ``beater/matching/refusals.py``); a document the shared index refuses
because mapping its new fields on the fly would pass the index's field
limit is percolated again without them (``beater/matching/folding.py``):
ingest never depends on the mapping's room. All matches are read, however
many: pages (10,000 a batch, 64 a single document) with ``search_after`` on
the sid (the search's body: ``beater/matching/search.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from beater.matching.document_shape import conform
from beater.matching.folding import fold_unmapped
from beater.matching.percolate_shape import ShapeChooser
from beater.matching.refusals import (
    ShardsNotStarted,
    item_reason,
    not_started,
    refused_by_a_shard,
    shards_not_started,
)
from beater.matching.search import DOCUMENT_PAGE_SIZE, PAGE_SIZE, hit_field, scope_filter, search_body
from beater.store.schema import SIGNPOST_FIELD, SIGNPOST_GROUP_FIELD, TARGET_FIELD
from beater.store.targets import Covering
from common.engine import Engine, EngineRejected, EngineUnavailable


@dataclass
class PercolateResult:
    """``matches[i]``: sids matching document i; ``errors[i]``: why document i failed.

    ``index``: the concrete index the documents went to (an alias or data
    stream name resolved to its write index), the ``_index`` of their hits.
    """

    matches: list[list[str]]
    errors: dict[int, str] = field(default_factory=dict)
    index: str | None = None


class CoveringTargets(Protocol):
    """What percolation asks of the target set (``beater/store/targets.py``'s ``TargetSet``)."""

    recent_since_ms: int

    def covering(self, index: str) -> Covering: ...

    def admits(self, canonical: str, index: str, pindex: str) -> bool: ...

    def signposted(self, canonical: str, group: int, index: str) -> str | None: ...

    def unseen_aliases(self, canonical: str) -> bool: ...

    @property
    def aliases_stale(self) -> bool: ...

    async def refresh_topology(self) -> bool: ...


@dataclass
class _Run:
    """One batch's percolation: where, which queries, which matches to keep."""

    pindex: str
    scope: dict[str, Any]
    keep: Callable[[dict[str, Any]], bool]
    #: what the request shape is learned per (the ingest index)
    key: str
    #: whether the aliases were re-read for a target met here first (once a batch)
    looked: bool = False


class Percolator:
    """Runs batches of documents through the shared percolator index, filtered on their covering targets."""

    def __init__(
        self,
        engine: Engine,
        targets: CoveringTargets,
        mode: str,
        documents_min: int,
    ) -> None:
        self.engine = engine
        #: The targets covering an index and where their queries are (``beater/store/targets.py``).
        self.targets = targets
        self.mode = mode
        self.documents_min = documents_min
        self.shapes = ShapeChooser()

    async def percolate(self, index: str, docs: list[dict[str, Any]]) -> PercolateResult:
        if self.targets.aliases_stale:
            # A target learned since the aliases were read may be an alias made a moment ago.
            await self.targets.refresh_topology()
        covering = self.targets.covering(index)
        if not docs:
            return PercolateResult(matches=[], index=covering.concrete)
        detours: set[str] = set()
        result = await self._percolate_in(covering.indices, covering, index, docs, detours)
        # Signposts (beater/store/schema.py): queries of a covering target placed in shared
        # indices this batch did not search, registered through another beater since this one
        # last read the targets. Learned now; this batch is percolated there too.
        detours -= set(covering.indices)
        if detours:
            again = await self._percolate_in(
                tuple(sorted(detours)), self.targets.covering(index), index, docs, set()
            )
            for i, sids in enumerate(again.matches):
                result.matches[i] += sids
            for i, reason in again.errors.items():
                result.errors.setdefault(i, reason)
        # One sid may be stored in two query indices at once (a field's mapping conflict gives a
        # query a second home while the first is still there): each document is published once.
        result.matches = [list(dict.fromkeys(sids)) for sids in result.matches]
        result.index = covering.concrete
        return result

    async def _percolate_in(
        self,
        indices: tuple[str, ...],
        covering: Covering,
        index: str,
        docs: list[dict[str, Any]],
        detours: set[str],
    ) -> PercolateResult:
        """The batch against ``indices``; shared indices signposted there are added to ``detours``."""
        pindex = ",".join(indices)
        scope = scope_filter(covering.targets, self.targets.recent_since_ms, covering.known)
        wanted = frozenset(covering.targets)

        def keep(hit: dict[str, Any]) -> bool:
            target = hit_field(hit, TARGET_FIELD)
            if target is None:
                signposted = hit_field(hit, SIGNPOST_FIELD)
                group = hit_field(hit, SIGNPOST_GROUP_FIELD)
                if signposted is not None and group is not None:
                    detour = self.targets.signposted(str(signposted), int(group), index)
                    if detour is not None:
                        detours.add(detour)
                return False
            target = str(target)
            return target in wanted or self.targets.admits(target, index, str(hit.get("_index", "")))

        run = _Run(pindex, scope, keep, index)
        try:
            result = await self._percolate(run, docs)
        except EngineUnavailable as exc:
            if not not_started(exc):
                raise
            # The percolator index was created a moment ago (by the first
            # registration, maybe on another beater) and its shard is not
            # started yet: wait for it once instead of failing the sender.
            await self.engine.run(
                # request_timeout given, both clients send ``timeout`` to the
                # engine (opensearch-py would take it as its own otherwise).
                lambda es: es.cluster.health(
                    index=pindex,
                    wait_for_status="yellow",
                    timeout="3s",
                    request_timeout=self.engine.timeout,
                )
            )
            result = await self._percolate(run, docs)
        if result.errors:
            await self._retry_conformed(run, docs, result)
        return result

    async def _retry_conformed(self, run: _Run, docs: list[dict[str, Any]], result: PercolateResult) -> None:
        """Documents the engine refused, again, each shared index with what it can parse.

        Without the values whose shape another target's documents mapped
        otherwise there (``beater/matching/document_shape.py``), and without the fields
        it does not map, their values folded into the default field
        (``beater/matching/folding.py``): an index at its field limit refuses a
        document that would map one more field on the fly, though no stored
        query can name it. Each shared index is asked separately, with its
        own fitting: a document is matched wherever it parses, and refused
        only where it parses nowhere. Rare, so the mappings are read only
        here, not for every batch. A document whose shape its own index
        refuses stays refused, as the engine will refuse to store it."""

        def mappings(es: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            def read(index: str) -> dict[str, Any]:
                return dict(
                    es.indices.get_mapping(index=index, ignore_unavailable=True, allow_no_indices=True)
                )

            return read(run.pindex), read(run.key)

        try:
            shared, own = await self.engine.run(mappings)
        except (EngineUnavailable, EngineRejected):
            return  # the refusals stand as the engine gave them
        own_properties = [body.get("mappings", {}).get("properties", {}) for body in own.values()]
        by_index = {name: body.get("mappings", {}).get("properties", {}) for name, body in shared.items()}
        retry: dict[int, dict[str, dict[str, Any]]] = {}
        folded: set[int] = set()
        for i in result.errors:
            if any(conform(docs[i], props) is not docs[i] for props in own_properties):
                continue  # its own index would refuse it too: the engine's refusal is the answer
            per_index: dict[str, dict[str, Any]] = {}
            for name, props in by_index.items():
                fitted = conform(docs[i], props)
                per_index[name] = fold_unmapped(fitted, props)
                if per_index[name] is not fitted:
                    folded.add(i)
            # One index and nothing to take out: the same request would fail the same way.
            if len(per_index) > 1 or any(doc is not docs[i] for doc in per_index.values()):
                retry[i] = per_index
        if not retry:
            return
        order = sorted(retry)
        matches: dict[int, list[str]] = {i: [] for i in order}
        parsed: set[int] = set()
        for name in sorted(by_index):
            slots = [i for i in order if name in retry[i]]
            again = await self._msearch(
                _Run(name, run.scope, run.keep, run.key), [retry[i][name] for i in slots]
            )
            for slot, i in enumerate(slots):
                if slot not in again.errors:
                    parsed.add(i)
                    matches[i] += [sid for sid in again.matches[slot] if sid not in matches[i]]
        for i in sorted(parsed):
            del result.errors[i]
            result.matches[i] = matches[i]
        done = len(parsed & folded)
        events = getattr(self.targets, "events", None)
        if done and events is not None:
            events.inc("percolate_documents_folded_total", done)

    async def _percolate(self, run: _Run, docs: list[dict[str, Any]]) -> PercolateResult:
        size = len(docs)
        if self.mode == "msearch" or size == 1:
            return await self._msearch(run, docs)
        learn = self.mode == "auto" and size < self.documents_min
        shape = self.shapes.choose(run.key, size) if learn else "documents"
        started = time.perf_counter()
        try:
            if shape == "msearch":
                result = await self._msearch(run, docs)
            else:
                result = await self._documents(run, docs)
        except EngineRejected:
            # One bad document fails the whole request: isolate it.
            return await self._msearch(run, docs)
        if learn:
            self.shapes.record(run.key, size, shape, time.perf_counter() - started)
        return result

    async def _look_at_new_targets(self, run: _Run, hits: list[dict[str, Any]]) -> None:
        """A query on a target learned since the aliases were read: re-read them before judging it.

        The target may be an alias made a moment ago (registered through
        another beater): judged with aliases read at the last sweep, its
        first documents would be missed.
        """
        if run.looked:
            return
        for hit in hits:
            target = hit_field(hit, TARGET_FIELD)
            if target is not None and self.targets.unseen_aliases(str(target)):
                run.looked = True
                await self.targets.refresh_topology()
                return

    async def _documents(self, run: _Run, docs: list[dict[str, Any]]) -> PercolateResult:
        matches: list[list[str]] = [[] for _ in docs]
        after: str | None = None
        while True:
            body = search_body({"documents": docs}, after, scope=run.scope)

            def search(es: Any, body: dict[str, Any] = body) -> dict[str, Any]:
                return es.search(index=run.pindex, body=body, ignore_unavailable=True, allow_no_indices=True)

            resp = await self.engine.run(search)
            refused = refused_by_a_shard(resp)
            if refused is not None:  # some document: find which, one by one (``_percolate``)
                raise EngineRejected(400, refused, "query_shard_exception")
            hits = resp["hits"]["hits"]
            await self._look_at_new_targets(run, hits)
            for hit in hits:
                if not run.keep(hit):
                    continue
                for slot in hit.get("fields", {}).get("_percolator_document_slot", [0]):
                    matches[slot].append(hit["_id"])
            if len(hits) < PAGE_SIZE:
                return PercolateResult(matches=matches)
            after = hits[-1]["sort"][0]

    async def _msearch(self, run: _Run, docs: list[dict[str, Any]]) -> PercolateResult:
        result = PercolateResult(matches=[[] for _ in docs])
        todo: dict[int, str | None] = dict.fromkeys(range(len(docs)))
        while todo:
            order = sorted(todo)
            lines: list[dict[str, Any]] = []
            for i in order:
                lines.append({"index": run.pindex, "ignore_unavailable": True, "allow_no_indices": True})
                lines.append(search_body({"document": docs[i]}, todo[i], DOCUMENT_PAGE_SIZE, run.scope))

            def msearch(es: Any, lines: list[dict[str, Any]] = lines) -> dict[str, Any]:
                return es.msearch(body=lines)

            resp = await self.engine.run(msearch)
            todo = {}
            for i, item in zip(order, resp["responses"], strict=True):
                if "error" in item:
                    status = int(item.get("status") or 400)
                    if status == 429 or status >= 500:
                        failed = (
                            ShardsNotStarted
                            if shards_not_started(status, item["error"])
                            else EngineUnavailable
                        )
                        raise failed(f"engine answered {status}: {item_reason(item)}")
                    result.errors[i] = item_reason(item)
                    continue
                refused = refused_by_a_shard(item)
                if refused is not None:
                    result.errors[i] = refused
                    result.matches[i] = []
                    continue
                hits = item["hits"]["hits"]
                await self._look_at_new_targets(run, hits)
                result.matches[i].extend(h["_id"] for h in hits if run.keep(h))
                if len(hits) == DOCUMENT_PAGE_SIZE:
                    todo[i] = hits[-1]["sort"][0]
        return result
