"""``n=<k>``: the most recent stored documents that match, spliced before the live hits.

The hand-over must lose nothing and repeat nothing. The stream subscribes
first and holds the live hits that arrive meanwhile, *then* searches the
document index, then sends the backfill and the held hits the search did not
already return. A document can also be searchable before its live hit
arrives (stored, then published), so live hits keep being checked against
the backfill (``Deduper``) until each backfill hit was matched or a short
window passed: a document stored and published around the search shows up
once, in the backfill.

The search runs across everything the read target covers (a pattern, a
list, an alias, a data stream: the engine resolves it). "Recent" is
``@timestamp`` where documents carry it, then index order: the index name
(daily indices sort by date), then ``_seq_no`` within one index (exact on
single-shard indices, Elasticsearch 7's default). Each hit's ``_index`` is
the concrete index it was found in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from common.engine import Engine
from common.hits import Hit, make_hit
from common.query.identity import to_dsl


def backfill_query(query: str | dict[str, Any]) -> dict[str, Any]:
    """The registered query as it runs against the document index.

    The percolator index searches query strings in ``estrom_all``, a field
    the document index does not have: there a bare term searches every field
    (``*``), leniently, because ``*`` spans numbers and dates that a word
    cannot parse as.
    """
    dsl = to_dsl(query)
    if isinstance(query, str):
        dsl = {"query_string": {**dsl["query_string"], "default_field": "*", "lenient": True}}
    return dsl


def backfill_body(query: str | dict[str, Any], size: int) -> dict[str, Any]:
    """Search body for the newest ``size`` matches, newest first."""
    return {
        "query": backfill_query(query),
        "size": size,
        "sort": [
            {"@timestamp": {"order": "desc", "unmapped_type": "date"}},
            {"_index": {"order": "desc"}},
            {"_seq_no": {"order": "desc"}},
        ],
        "track_total_hits": False,
    }


def hits_from_search(index: str, response: dict[str, Any]) -> list[Hit]:
    """Search hits as live hits look (``_index`` the concrete index each was found in), oldest first."""
    found = response.get("hits", {}).get("hits", [])
    return [
        make_hit(str(h.get("_index") or index), h.get("_source", {}), h.get("_id")) for h in reversed(found)
    ]


def _source_key(hit: Hit) -> str:
    return json.dumps(hit.get("_source"), sort_keys=True, separators=(",", ":"), default=str)


class Deduper:
    """Recognises live hits that a backfill already delivered.

    A live hit with an ``_id`` is the backfill hit with that ``_id``; one
    without is a backfill hit with an equal ``_source``. Each backfill hit
    cancels at most one live hit, so genuinely repeated documents survive.

    A document may be searchable before its live hit arrives (a sender that
    stores, then publishes), so the stream keeps asking for a while after
    the hand-over, not only about the hits held during the search.
    """

    def __init__(self, backfill: Sequence[Hit]) -> None:
        self._ids: Counter[str] = Counter()
        self._sources: Counter[str] = Counter()
        for hit in backfill:
            if "_id" in hit:
                self._ids[json.dumps(hit["_id"], default=str)] += 1
            self._sources[_source_key(hit)] += 1
        self._left = len(backfill)

    @property
    def exhausted(self) -> bool:
        """Every backfill hit was matched: nothing more can be a duplicate."""
        return self._left <= 0

    def seen(self, hit: Hit) -> bool:
        """Whether ``hit`` was backfilled (and, if so, count it as matched)."""
        if self._left <= 0:
            return False
        counter, key = (
            (self._ids, json.dumps(hit["_id"], default=str))
            if "_id" in hit
            else (self._sources, _source_key(hit))
        )
        if counter[key] > 0:
            counter[key] -= 1
            self._left -= 1
            return True
        return False


def splice(backfill: Sequence[Hit], live: Sequence[Any], hit_of: Any = None) -> list[Any]:
    """The live items that are not already in ``backfill``, in their order.

    ``hit_of`` extracts the hit from a live item (default: the item itself).
    """
    get = hit_of or (lambda item: item)
    deduper = Deduper(backfill)
    return [item for item in live if not deduper.seen(get(item))]


class Backfill:
    """Fetches the newest matching documents through the one engine client."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def fetch(self, index: str, query: str | dict[str, Any], size: int) -> list[Hit]:
        """Up to ``size`` hits, oldest first; none if the target covers no index.

        Raises EngineUnavailable (503) or EngineRejected (the query does not
        run against this index: 400 with the engine's reason).
        """
        if size <= 0:
            return []
        body = backfill_body(query, size)

        def search(es: Any) -> dict[str, Any]:
            return es.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)

        return hits_from_search(index, await self.engine.run(search))
