"""The percolate search: its body, the scope of the covering targets, its pages.

One body serves both request shapes (``beater/matching/percolate.py``): a
``documents`` array for a batch, a single ``document`` per search of an
``_msearch``. Only active queries are candidates, sorted on the sid so that
every match is read, page after page, with ``search_after``.
"""

from __future__ import annotations

from typing import Any

from beater.store.schema import (
    ACTIVE_FIELD,
    QUERY_FIELD,
    REGISTERED_FIELD,
    SID_FIELD,
    SIGNPOST_FIELD,
    SIGNPOST_GROUP_FIELD,
    TARGET_FIELD,
)

PAGE_SIZE = 10_000  # index.max_result_window
#: Page size of each single-document search of ``msearch``. The engine sizes a
#: search's sorted collector by ``size`` up front, per search: 10,000 slots per
#: document cost more than percolating it. A document matching more queries
#: than this is paged with ``search_after``.
DOCUMENT_PAGE_SIZE = 64


def scope_filter(
    targets: tuple[str, ...], recent_since_ms: int | None, known: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Queries of the covering targets, and those registered since ``recent_since_ms`` on targets not ``known``.

    A recent query of a known target that does not cover the index would be
    dropped after the search anyway: leaving it out keeps a burst of
    registrations from adding candidates to every batch.
    """
    covering = {"terms": {TARGET_FIELD: list(targets)}}
    if recent_since_ms is None:
        return covering
    recent: dict[str, Any] = {"range": {REGISTERED_FIELD: {"gte": recent_since_ms}}}
    if known:
        recent = {"bool": {"filter": [recent], "must_not": [{"terms": {TARGET_FIELD: list(known)}}]}}
    return {"bool": {"should": [covering, recent], "minimum_should_match": 1}}


def search_body(
    percolate: dict[str, Any],
    after: str | None = None,
    size: int = PAGE_SIZE,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A page of ``size`` active queries (in ``scope``) matching ``percolate``'s document(s), after the sid ``after``."""
    body: dict[str, Any] = {
        # Filter context: no scores to compute, the slots are still reported.
        # Only queries someone listens to (see beater/queries/lifecycle.py).
        "query": {
            "bool": {
                "filter": [
                    {"percolate": {"field": QUERY_FIELD, **percolate}},
                    {"term": {ACTIVE_FIELD: True}},
                    *([] if scope is None else [scope]),
                ]
            }
        },
        "_source": False,
        "size": size,
        "sort": [{SID_FIELD: "asc"}],
        "track_total_hits": False,
    }
    if scope is not None:
        body["docvalue_fields"] = [TARGET_FIELD, SIGNPOST_FIELD, SIGNPOST_GROUP_FIELD]
    if after is not None:
        body["search_after"] = [after]
    return body


def hit_field(hit: dict[str, Any], name: str) -> Any:
    """The first value of a hit's docvalue field ``name``; None if it has none."""
    found = (hit.get("fields") or {}).get(name)
    return found[0] if found else None
