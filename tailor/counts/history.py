"""``since=<duration>``: the frames of a past period, from the stored documents.

The engine counts them: a date histogram on ``@timestamp`` with the same
windows as the live counts (fixed intervals from the epoch), a terms
sub-aggregation for ``by=`` (with ``missing``), empty windows included.
The period ends when the search starts (``end``); its last, partial window
seeds the stream's first live window.

No gap, no double count at the hand-over: the stream joins (and holds live
hits) before the search, so no hit is lost; and a live hit that is a
document the engine has just counted (stored a moment before its hit
arrived) must not count twice: the documents of the last seconds before
``end`` are fetched too, and the stream skips live hits that are one of them
(``Deduper``, by ``_id`` or equal ``_source``), as a tail's ``n=`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config import Settings
from common.engine import NOT_FOUND_ERRORS, Engine
from common.hits import make_hit
from tailor.backfill.handover import Deduper
from tailor.backfill.search import backfill_query
from tailor.counts.counting import WindowCounts, value_key
from tailor.counts.event_time import TIMESTAMP

#: At most this many of them (at 1,000 documents a second, the last 10 seconds).
RECENT_MAX = 10_000


@dataclass
class History:
    """Past windows (start, counts) oldest first; the seed of the current one; the recent documents."""

    windows: list[tuple[float, WindowCounts]]
    current: float
    seed: WindowCounts | None
    recent: Deduper


def aggregation_field(mappings: dict[str, Any], by: str) -> str:
    """The field a terms aggregation can use for ``by``: its ``.keyword`` where ``by`` is text."""
    keyword = f"{by}.keyword"
    text, has_keyword = False, False
    for index_mappings in mappings.values():
        fields = index_mappings.get("mappings", {})
        for name, spec in fields.items():
            leaf: dict[str, Any] = next(iter(spec.get("mapping", {}).values()), {})
            if name == by and leaf.get("type") == "text":
                text = True
            elif name == by:
                return by
            if name == keyword:
                has_keyword = True
    return keyword if text and has_keyword else by


def history_body(
    query: str | dict[str, Any], by_field: str | None, every: float, start: float, end: float, k: int
) -> dict[str, Any]:
    """Search body: per window of ``every`` seconds in [start, end), the hits and top ``k`` values."""
    ms = round(every * 1000)
    histogram: dict[str, Any] = {
        "date_histogram": {
            "field": TIMESTAMP,
            "fixed_interval": f"{ms}ms",
            "min_doc_count": 0,
            "extended_bounds": {"min": round(start * 1000), "max": round(end * 1000) - 1},
        }
    }
    if by_field is not None:
        histogram["aggs"] = {
            "values": {"terms": {"field": by_field, "size": k}},
            "missing": {"missing": {"field": by_field}},
        }
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": [backfill_query(query), _range(start, end)]}},
        "aggs": {"windows": histogram},
    }


def recent_body(query: str | dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """Search body: the documents of [start, end), to recognise their live hits."""
    return {
        "size": RECENT_MAX,
        "track_total_hits": False,
        "query": {"bool": {"filter": [backfill_query(query), _range(start, end)]}},
    }


def _range(start: float, end: float) -> dict[str, Any]:
    return {
        "range": {TIMESTAMP: {"gte": round(start * 1000), "lt": round(end * 1000), "format": "epoch_millis"}}
    }


def windows_from(response: dict[str, Any], by: str | None) -> list[tuple[float, WindowCounts]]:
    """The histogram's buckets as (window start, counts), oldest first."""
    out: list[tuple[float, WindowCounts]] = []
    buckets = response.get("aggregations", {}).get("windows", {}).get("buckets", [])
    for bucket in buckets:
        counts = WindowCounts(by)
        top: dict[str, int] = {}
        other = missing = 0
        if by is not None:
            values = bucket.get("values", {})
            for term in values.get("buckets", []):
                key = term.get("key_as_string") if "key_as_string" in term else value_key(term["key"])
                top[str(key)] = term["doc_count"]
            other = values.get("sum_other_doc_count", 0)
            missing = bucket.get("missing", {}).get("doc_count", 0)
        counts.seed(bucket["doc_count"], top, other, missing)
        out.append((bucket["key"] / 1000, counts))
    return out


class CountHistory:
    """Runs the ``since=`` searches through the one engine client."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def fetch(
        self,
        index: str,
        query: str | dict[str, Any],
        by: str | None,
        every: float,
        k: int,
        start: float,
        end: float,
        current: float,
        recent: float = Settings.tailor_handover,
    ) -> History:
        """Windows from ``start`` (aligned) to ``end``; the one starting at ``current`` is the seed.

        The documents stamped in the last ``recent`` seconds before ``end`` are the hand-over's.

        Raises EngineUnavailable (503) or EngineRejected (400 with the engine's reason).
        """

        def search(es: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            by_field = None
            if by is not None:
                try:
                    mappings = es.indices.get_field_mapping(
                        fields=[by, f"{by}.keyword"],
                        index=index,
                        ignore_unavailable=True,
                        allow_no_indices=True,
                    )
                except NOT_FOUND_ERRORS:  # nothing stored yet under the target
                    mappings = {}
                by_field = aggregation_field(mappings, by)
            options = {"index": index, "ignore_unavailable": True, "allow_no_indices": True}
            counted = es.search(body=history_body(query, by_field, every, start, end, k), **options)
            latest = es.search(body=recent_body(query, max(start, end - recent), end), **options)
            return counted, latest

        counted, latest = await self.engine.run(search)
        found = {round(t, 3): c for t, c in windows_from(counted, by)}
        windows: list[tuple[float, WindowCounts]] = []
        t = start
        while t < current - 1e-6:  # every window of the period, empty ones too
            windows.append((t, found.get(round(t, 3)) or WindowCounts(by)))
            t = round(t + every, 3)
        hits = latest.get("hits", {}).get("hits", [])
        recent_hits = [make_hit(index, h.get("_source", {}), h.get("_id")) for h in hits]
        return History(windows, current, found.get(round(current, 3)), Deduper(recent_hits))
