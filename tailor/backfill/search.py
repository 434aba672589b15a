"""The searches of a backfill: the registered query against the document index, newest first.

The search runs across everything the read target covers (a pattern, a
list, an alias, a data stream: the engine resolves it). "Recent" is
``@timestamp`` where documents carry it, then index order: the index name
(daily indices sort by date), then ``_seq_no`` within one index (exact on
single-shard indices, Elasticsearch 7's default). Each hit's ``_index`` is
the concrete index it was found in.
"""

from __future__ import annotations

from typing import Any

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


def search_with_sources(index: str, query: Any, size: int) -> Any:
    """The newest ``size`` matches with their sources: a small backfill in one search."""
    body = backfill_body(query, size)

    def search(es: Any) -> dict[str, Any]:
        return es.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)

    return search


def search_ids(index: str, query: Any, size: int) -> Any:
    """The newest ``size`` matches' concrete index and ``_id``, without sources."""
    body = {**backfill_body(query, size), "_source": False}

    def search(es: Any) -> dict[str, Any]:
        return es.search(
            index=index,
            body=body,
            filter_path=["hits.hits._index", "hits.hits._id"],
            ignore_unavailable=True,
            allow_no_indices=True,
        )

    return search


def search_page(index: str, page: list[tuple[str, Any]]) -> Any:
    """The documents of one page, by (concrete index, ``_id``)."""
    by_index: dict[str, list[Any]] = {}
    for name, doc_id in page:
        by_index.setdefault(name, []).append(doc_id)
    body = {
        "query": {
            "bool": {
                "should": [
                    {"bool": {"filter": [{"term": {"_index": name}}, {"ids": {"values": ids}}]}}
                    for name, ids in by_index.items()
                ],
                "minimum_should_match": 1,
            }
        },
        "size": len(page),
        "track_total_hits": False,
    }

    def search(es: Any) -> dict[str, Any]:
        return es.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)

    return search
