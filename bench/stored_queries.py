"""Stored queries as the beater writes them, for benchmarks that seed thousands at once.

Registering over WAMP refreshes the percolator index per group of calls, so a
benchmark that needs 10,000 or 100,000 stored queries registers what it can
in its time budget and writes the rest straight into the percolator index
with ``_bulk``. :func:`query_document` builds those documents with the
beater's own function, :func:`write_query_documents` writes them;
:func:`check_document_shape` fails the run if a document the beater wrote
no longer looks like one written here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from beater.store.schema import (
    IDLE_SINCE_FIELD,
    LAST_ACTIVE_FIELD,
    META_FIELD,
    NEW_FIELDS_FIELD,
    PRINCIPAL_FIELD,
    REGISTERED_FIELD,
)
from beater.store.schema import query_document as stored_query_document
from common.query.limits import QueryLimits
from common.query.prepared import prepare

#: The beater's default ``ESTROM_QUERY_INDEX_PREFIX``: ``<prefix><index>`` addresses one target's queries.
PERC_PREFIX = "estrom-queries-"

Query = str | dict[str, Any]


def query_document(index: str, query: Query, now_ms: int) -> dict[str, Any]:
    """What ``QueryStore.register`` stores for ``query`` (its document id is the sid)."""
    return stored_query_document(index, prepare(query, QueryLimits()), now_ms)


def write_query_documents(
    es: Any,
    index: str,
    queries: Sequence[tuple[str, Query]],
    chunk: int,
    written: Callable[[int], None] | None = None,
) -> None:
    """Write the documents of these ``(sid, query)`` pairs with ``_bulk``, ``chunk`` per request, then
    refresh; ``written`` hears how many are written after each request (for progress)."""
    pindex = PERC_PREFIX + index
    for start in range(0, len(queries), chunk):
        now_ms = int(time.time() * 1000)
        lines: list[dict[str, Any]] = []
        for sid, query in queries[start : start + chunk]:
            lines += [{"index": {"_index": pindex, "_id": sid}}, query_document(index, query, now_ms)]
        resp = es.bulk(body=lines, filter_path="errors,items.*.error")
        if resp.get("errors"):
            raise RuntimeError(f"seeding {pindex} failed: {resp['items'][:2]}")
        if written is not None:
            written(start + len(lines) // 2)
    es.indices.refresh(index=pindex)


def check_document_shape(es: Any, index: str, sid: str, query: Query) -> None:
    """Fail unless ``query_document`` still writes what the beater's registration wrote for ``sid``."""
    stored = es.get(index=PERC_PREFIX + index, id=sid)["_source"]
    mine = query_document(index, query, 0)
    volatile = {LAST_ACTIVE_FIELD, IDLE_SINCE_FIELD, REGISTERED_FIELD}  # times
    optional = {NEW_FIELDS_FIELD, PRINCIPAL_FIELD}  # the field budgets' bookkeeping, where it applies
    same = set(stored) - optional == set(mine) - optional and all(
        stored[k] == mine[k] for k in mine if k not in volatile | {META_FIELD}
    )
    same = same and stored[META_FIELD]["query"] == mine[META_FIELD]["query"]
    if not same:
        raise RuntimeError(f"the beater stores queries differently now; update query_document: {stored!r}")
