"""The hand-over from a backfill to the live hits: nothing lost, nothing repeated.

The stream subscribes first and holds the live hits that arrive meanwhile,
*then* searches the document index, then sends the backfill and the held
hits the search did not already return. A document can also be searchable
before its live hit arrives (stored, then published), so live hits keep
being checked against the backfill (``Deduper``) until each backfill hit was
matched or a short window passed: a document stored and published around
the search shows up once, in the backfill.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from common.hits import Hit
from tailor.streaming.format import EncodedHit

K = TypeVar("K", str, bytes)


def source_digest(source: Any) -> bytes:
    """A digest of a whole ``_source``: what a live copy without ``_id`` is recognised by."""
    text = json.dumps(source, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class CutHit(EncodedHit):
    """A hit whose ``_source`` was cut by ``fields=``, with the digest of its whole source.

    Cut sources are often alike (``fields=level``: every error is
    ``{"level": "error"}``), so the hand-over compares the whole sources'
    digests, or a new document would be taken for a backfilled one.
    """

    __slots__ = ("whole",)

    def __init__(self, members: Hit, whole: bytes) -> None:
        super().__init__(members)
        self.whole = whole

    def with_members(self, **extra: Any) -> CutHit:
        """A copy with more top-level members (``_late``), keeping the whole source's digest."""
        return CutHit({**self, **extra}, self.whole)


def cut(hit: Hit, project: Callable[[dict[str, Any]], dict[str, Any]]) -> CutHit:
    """``hit`` with its ``_source`` cut by ``project`` (``_index``, ``_id`` kept), remembering its whole digest."""
    source = hit.get("_source")
    members = {k: project(v) if k == "_source" and isinstance(v, dict) else v for k, v in hit.items()}
    return CutHit(members, source_digest(source))


def _source_key(hit: Hit) -> bytes:
    return hit.whole if isinstance(hit, CutHit) else source_digest(hit.get("_source"))


def _id_key(hit: Hit) -> str:
    return json.dumps(hit["_id"], default=str)


class Deduper:
    """Recognises live hits that a backfill already delivered.

    A live hit with an ``_id`` is the backfill hit with that ``_id``; one
    without is a backfill hit with an equal ``_source``. Each backfill hit
    cancels at most one live hit, so genuinely repeated documents survive.

    A document may be searchable before its live hit arrives (a sender that
    stores, then publishes), so the stream keeps asking for a while after
    the hand-over, not only about the hits held during the search. Backfill
    hits are ``add``-ed page by page; sources are kept as 16-byte digests.
    """

    def __init__(self, backfill: Iterable[Hit] = ()) -> None:
        self._ids: Counter[str] = Counter()
        self._sources: Counter[bytes] = Counter()
        self._left = 0
        for hit in backfill:
            self.add(hit)

    def add(self, hit: Hit) -> None:
        if "_id" in hit:
            self._ids[_id_key(hit)] += 1
        self._sources[_source_key(hit)] += 1
        self._left += 1

    @property
    def exhausted(self) -> bool:
        """Every backfill hit was matched: nothing more can be a duplicate."""
        return self._left <= 0

    def seen(self, hit: Hit) -> bool:
        """Whether ``hit`` was backfilled (and, if so, count it as matched)."""
        if self._left <= 0:
            return False
        matched = _take(self._ids, _id_key(hit)) if "_id" in hit else _take(self._sources, _source_key(hit))
        if matched:
            self._left -= 1
        return matched


def _take(left: Counter[K], key: K) -> bool:
    """One of the backfill hits under ``key`` matched, if any is left (a Counter's miss adds no key)."""
    if left[key] <= 0:
        return False
    left[key] -= 1
    return True


def splice(backfill: Sequence[Hit], live: Sequence[Any], hit_of: Any = None) -> list[Any]:
    """The live items that are not already in ``backfill``, in their order.

    ``hit_of`` extracts the hit from a live item (default: the item itself).
    """
    get = hit_of or (lambda item: item)
    deduper = Deduper(backfill)
    return [item for item in live if not deduper.seen(get(item))]
