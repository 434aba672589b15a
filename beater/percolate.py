"""Percolation: which registered queries match each document of a batch.

Two request shapes exist, measured by the retired percolate-modes study
(``bench/results-percolate-modes-2026-11-27.txt``, figures in docs/architecture.md;
the choice between them is ``beater/percolate_shape.py``'s):

* ``documents``: one percolate query with a ``documents`` array; matches come
  back per stored query with ``_percolator_document_slot``;
* ``msearch``: one single-document percolate search per document in one
  ``_msearch`` request; an item that fails fails alone.

Measured on 7.17: ``documents`` wins from about 100 documents on (2-7x at
1,000) and keeps scaling, close to raw ``_bulk`` throughput with few queries.
Below that either may win by 2x, depending on the queries and on how many
each document matches. So ``auto`` uses ``documents`` from
``documents_min`` on and, below it, whichever shape it measured to cost less
(``beater/percolate_shape.py``).

Whichever is used, a batch the engine refuses as a whole (one document that
cannot be parsed against the mapping) is retried item by item through
``_msearch`` so only the offending documents are rejected. All matches are
read, however many: pages (10,000 a batch, 64 a single document) with
``search_after`` on the sid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from beater.percolate_shape import ShapeChooser
from beater.store.schema import ACTIVE_FIELD, QUERY_FIELD, SID_FIELD
from common.engine import TRANSPORT_ERRORS, Engine, EngineRejected, EngineUnavailable

PAGE_SIZE = 10_000  # index.max_result_window
#: Page size of each single-document search of ``msearch``. The engine sizes a
#: search's sorted collector by ``size`` up front, per search: 10,000 slots per
#: document cost more than percolating it. A document matching more queries
#: than this is paged with ``search_after``.
DOCUMENT_PAGE_SIZE = 64
MODES = ("auto", "documents", "msearch")
#: Below this many documents, ``auto`` uses ``msearch`` (see the figures above).
DOCUMENTS_MIN = 100


#: Shard failures that mean "this shard copy is not started yet", not "the engine is failing".
_NOT_STARTED = frozenset(
    {"no_shard_available_action_exception", "unavailable_shards_exception", "shard_not_found_exception"}
)


class ShardsNotStarted(EngineUnavailable):
    """A search found the percolator index but not one started shard copy of it."""


def shards_not_started(status: int, error: Any) -> bool:
    """Whether an engine error says the index's shards are not started yet (worth a health wait).

    Judged by the engine's status and error types, never its words: an
    index created a moment ago answers ``503 search_phase_execution_exception``
    with no shard failure at all (no copy was there to try) or only
    "no shard available" ones. An overloaded engine says "all shards failed"
    too, but with 429 (``es_rejected_execution_exception``) or with failures
    of other types: waiting for health and re-running the batch would only
    add load to an engine that is already failing.
    """
    if status != 503 or not isinstance(error, dict):
        return False
    if error.get("type") in _NOT_STARTED:
        return True
    if error.get("type") != "search_phase_execution_exception":
        return False
    failures = error.get("failed_shards") or []
    causes = [f.get("reason") for f in failures if isinstance(f, dict)] or error.get("root_cause") or []
    return all(isinstance(c, dict) and c.get("type") in _NOT_STARTED for c in causes)


def _not_started(exc: EngineUnavailable) -> bool:
    """Whether a failed engine call is the not-started case (see shards_not_started)."""
    if isinstance(exc, ShardsNotStarted):
        return True
    cause = exc.__cause__
    if not isinstance(cause, TRANSPORT_ERRORS) or not isinstance(cause.status_code, int):
        return False
    info = cause.info if isinstance(cause.info, dict) else {}
    return shards_not_started(cause.status_code, info.get("error"))


@dataclass
class PercolateResult:
    """``matches[i]``: sids matching document i; ``errors[i]``: why document i failed."""

    matches: list[list[str]]
    errors: dict[int, str] = field(default_factory=dict)


def _search_body(
    percolate: dict[str, Any], after: str | None = None, size: int = PAGE_SIZE
) -> dict[str, Any]:
    body: dict[str, Any] = {
        # Filter context: no scores to compute, the slots are still reported.
        # Only queries someone listens to (see beater/lifecycle.py).
        "query": {
            "bool": {
                "filter": [
                    {"percolate": {"field": QUERY_FIELD, **percolate}},
                    {"term": {ACTIVE_FIELD: True}},
                ]
            }
        },
        "_source": False,
        "size": size,
        "sort": [{SID_FIELD: "asc"}],
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = [after]
    return body


def _item_reason(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, dict):
        node = error
        while isinstance(node.get("caused_by"), dict):
            node = node["caused_by"]
        return str(node.get("reason") or error.get("reason") or error.get("type") or "engine error")
    return str(error)


class Percolator:
    """Runs batches of documents through the percolator index of their index."""

    def __init__(
        self,
        engine: Engine,
        prefix: str,
        mode: str = "auto",
        documents_min: int = DOCUMENTS_MIN,
        targets: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"percolate mode must be one of {MODES}, not {mode!r}")
        self.engine = engine
        self.prefix = prefix
        #: The percolator indices of the targets covering an index (``beater/store/targets.py``):
        #: one request serves them all. Without it, the one of the index's own name.
        self.targets = targets
        self.mode = mode
        self.documents_min = documents_min
        self.shapes = ShapeChooser()

    async def percolate(self, index: str, docs: list[dict[str, Any]]) -> PercolateResult:
        if not docs:
            return PercolateResult(matches=[])
        pindex = ",".join(self.targets(index)) if self.targets is not None else self.prefix + index
        if not pindex:
            return PercolateResult(matches=[[] for _ in docs])
        try:
            return await self._percolate(pindex, docs)
        except EngineUnavailable as exc:
            if not _not_started(exc):
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
            return await self._percolate(pindex, docs)

    async def _percolate(self, pindex: str, docs: list[dict[str, Any]]) -> PercolateResult:
        size = len(docs)
        if self.mode == "msearch" or size == 1:
            return await self._msearch(pindex, docs)
        learn = self.mode == "auto" and size < self.documents_min
        shape = self.shapes.choose(pindex, size) if learn else "documents"
        started = time.perf_counter()
        try:
            if shape == "msearch":
                result = await self._msearch(pindex, docs)
            else:
                result = await self._documents(pindex, docs)
        except EngineRejected:
            # One bad document fails the whole request: isolate it.
            return await self._msearch(pindex, docs)
        if learn:
            self.shapes.record(pindex, size, shape, time.perf_counter() - started)
        return result

    async def _documents(self, pindex: str, docs: list[dict[str, Any]]) -> PercolateResult:
        matches: list[list[str]] = [[] for _ in docs]
        after: str | None = None
        while True:
            body = _search_body({"documents": docs}, after)

            def search(es: Any, body: dict[str, Any] = body) -> dict[str, Any]:
                return es.search(index=pindex, body=body, ignore_unavailable=True, allow_no_indices=True)

            resp = await self.engine.run(search)
            hits = resp["hits"]["hits"]
            for hit in hits:
                for slot in hit.get("fields", {}).get("_percolator_document_slot", [0]):
                    matches[slot].append(hit["_id"])
            if len(hits) < PAGE_SIZE:
                return PercolateResult(matches=matches)
            after = hits[-1]["sort"][0]

    async def _msearch(self, pindex: str, docs: list[dict[str, Any]]) -> PercolateResult:
        result = PercolateResult(matches=[[] for _ in docs])
        todo: dict[int, str | None] = dict.fromkeys(range(len(docs)))
        while todo:
            order = sorted(todo)
            lines: list[dict[str, Any]] = []
            for i in order:
                lines.append({"index": pindex, "ignore_unavailable": True, "allow_no_indices": True})
                lines.append(_search_body({"document": docs[i]}, todo[i], DOCUMENT_PAGE_SIZE))

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
                        raise failed(f"engine answered {status}: {_item_reason(item)}")
                    result.errors[i] = _item_reason(item)
                    continue
                hits = item["hits"]["hits"]
                result.matches[i].extend(h["_id"] for h in hits)
                if len(hits) == DOCUMENT_PAGE_SIZE:
                    todo[i] = hits[-1]["sort"][0]
        return result
