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

A backfill is read in pages, as the client takes them, so that what a tail
holds is bounded whatever ``n`` and the documents' size: one search finds
the newest ``n`` matches' ids (no sources), then the sources come a page at
a time, oldest first, each page asked for only once the client has taken
the one before (``ClientStream``). A page holds about
``ESTROM_TAILOR_BACKFILL_BUFFER`` bytes; all pages of a tailor together
``ESTROM_TAILOR_BACKFILL_TOTAL`` (``BackfillBudget``: past it, a tail waits
for its next page until others have been read). Up to ``ONE_SEARCH``
documents are one search with their sources, as a small backfill always was.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed

from common.engine import Engine
from common.hits import Hit, make_hit
from common.query.identity import to_dsl

#: Backfills of at most this many documents are one search with their sources.
ONE_SEARCH = 10
#: The most documents one page asks for, however small they are.
MAX_PAGE = 500
#: What the hand-over check and the list of ids keep per backfilled document,
#: reserved from the tailor's budget for as long as the backfill lasts.
PER_DOCUMENT = 256


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


def _source_key(hit: Hit) -> bytes:
    """A digest of the hit's source: what a live copy without ``_id`` is recognised by."""
    text = json.dumps(hit.get("_source"), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


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
        if "_id" in hit:
            ids, key = self._ids, _id_key(hit)
            if ids[key] > 0:
                ids[key] -= 1
                self._left -= 1
                return True
            return False
        sources, digest = self._sources, _source_key(hit)
        if sources[digest] > 0:
            sources[digest] -= 1
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


class BackfillBudget:
    """The bytes all backfills of a tailor may hold at once (``ESTROM_TAILOR_BACKFILL_TOTAL``).

    ``acquire`` answers at once while there is room, else when enough was
    released, first come first served; one request larger than the whole
    budget is granted when nothing else is held, so every backfill moves.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0
        self._waiting: deque[tuple[int, Deferred[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Backfills waiting for room."""
        return len(self._waiting)

    def _fits(self, n: int) -> bool:
        return self.held + n <= self.total or self.held == 0

    def acquire(self, n: int) -> Deferred[None]:
        if not self._waiting and self._fits(n):
            self.held += n
            return succeed(None)
        entry: tuple[int, Deferred[None]]

        def cancel(_d: Deferred[None]) -> None:
            if entry in self._waiting:
                self._waiting.remove(entry)
                self._grant()  # the head may have been the one that did not fit

        d: Deferred[None] = Deferred(cancel)
        entry = (n, d)
        self._waiting.append(entry)
        return d

    def grow(self, n: int) -> None:
        """Count ``n`` more bytes already held (a page larger than asked for)."""
        self.held += n

    def release(self, n: int) -> None:
        self.held = max(0, self.held - n)
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._fits(self._waiting[0][0]):
            n, d = self._waiting.popleft()
            self.held += n
            d.callback(None)


class BackfillPages:
    """One tail's backfill, page by page, oldest first; what it holds is reserved from the budget.

    ``first`` is the first page (fetched before the stream starts, so that
    errors are still HTTP errors); ``next`` fetches the following one and
    answers ``[]`` after the last. ``page_read`` gives back the bytes of the
    page the client has taken; ``close`` everything (the tail ended).
    """

    def __init__(
        self,
        engine: Engine,
        budget: BackfillBudget,
        buffer: int,
        index: str,
        query: Any,
        on_close: Callable[[BackfillPages], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_close = on_close
        self.budget = budget
        self.buffer = buffer
        self.index = index
        self.query = query
        self.first: list[Hit] = []
        #: (concrete index, _id) of the documents still to fetch, oldest first
        self._ids: deque[tuple[str, Any]] = deque()
        self._meta = 0  # bytes reserved for ids and the hand-over check
        self._page = 0  # bytes reserved for the page in the client's hands
        self._per_hit = 0  # average bytes of a hit so far (0: none seen yet)
        self._pending: Deferred[Any] | None = None
        self.closed = False

    @property
    def done(self) -> bool:
        """No page left to fetch."""
        return not self._ids

    @property
    def held(self) -> int:
        return self._meta + self._page

    async def open(self, size: int) -> None:
        """Find the newest ``size`` matches and fetch the first page (raises the engine's errors)."""
        if size <= ONE_SEARCH:
            await self._reserve_page()
            self.first = hits_from_search(self.index, await self._run(self._search_with_sources(size)))
            return
        ids = await self._run(self._search_ids(size))
        found = ids.get("hits", {}).get("hits", []) if isinstance(ids, dict) else []
        names: dict[str, str] = {}
        for h in reversed(found):  # oldest first; one string per index name
            name = str(h.get("_index") or self.index)
            self._ids.append((names.setdefault(name, name), h.get("_id")))
        del ids, found
        self._meta = len(self._ids) * PER_DOCUMENT
        self.budget.grow(self._meta)  # taken before any page: a backfill in hand is not held back
        self.first = await self.next()

    async def next(self) -> list[Hit]:
        """The next page, oldest first; ``[]`` once every document was fetched."""
        if not self._ids or self.closed:
            return []
        await self._reserve_page()
        # The first page is one document: its size tells how many the next may hold.
        count = 1 if not self._per_hit else max(1, min(MAX_PAGE, self.buffer // self._per_hit))
        page = [self._ids.popleft() for _ in range(min(count, len(self._ids)))]
        response = await self._run(self._search_page(page))
        by_key = {(h.get("_index"), h.get("_id")): h for h in response.get("hits", {}).get("hits", [])}
        del response
        hits: list[Hit] = []
        for name, doc_id in page:
            h = by_key.get((name, doc_id))
            if h is not None:  # deleted since: skipped
                hits.append(make_hit(str(h.get("_index") or name), h.get("_source", {}), h.get("_id")))
        return hits

    def framed(self, size: int, hits: int) -> None:
        """The page just handed to the client came to ``size`` bytes in ``hits`` hits: count
        what it holds past its reservation, and size the next page after its documents."""
        if hits:
            self._per_hit = max(1, size // hits)
        if size > self._page:
            self.budget.grow(size - self._page)
            self._page = size

    def page_read(self) -> None:
        """The client has taken the last page: its bytes are free for others."""
        page, self._page = self._page, 0
        if page:
            self.budget.release(page)

    def handover_over(self) -> None:
        """Live hits are no longer checked against the backfill: its digests are gone."""
        if not self._ids:
            self._release_meta()

    def close(self) -> None:
        """The tail is over: cancel what is in flight, give everything back."""
        if self.closed:
            return
        self.closed = True
        self._ids.clear()
        pending, self._pending = self._pending, None
        if pending is not None and not pending.called:
            pending.cancel()
        self._release_meta()
        self.page_read()
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close(self)

    # -- internals -------------------------------------------------------

    async def _reserve_page(self) -> None:
        self.page_read()
        d = self._pending = self.budget.acquire(self.buffer)
        try:
            await d
        finally:
            self._pending = None
        if self.closed:  # granted after the tail ended
            self.budget.release(self.buffer)
            raise _Closed()
        self._page = self.buffer

    async def _run(self, fn: Any) -> Any:
        d = self._pending = Deferred.fromCoroutine(self.engine.run(fn))
        try:
            return await d
        finally:
            self._pending = None

    def _release_meta(self) -> None:
        meta, self._meta = self._meta, 0
        if meta:
            self.budget.release(meta)

    def _search_with_sources(self, size: int) -> Any:
        body = backfill_body(self.query, size)
        index = self.index

        def search(es: Any) -> dict[str, Any]:
            return es.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)

        return search

    def _search_ids(self, size: int) -> Any:
        body = {**backfill_body(self.query, size), "_source": False}
        index = self.index

        def search(es: Any) -> dict[str, Any]:
            return es.search(
                index=index,
                body=body,
                filter_path=["hits.hits._index", "hits.hits._id"],
                ignore_unavailable=True,
                allow_no_indices=True,
            )

        return search

    def _search_page(self, page: list[tuple[str, Any]]) -> Any:
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
        index = self.index

        def search(es: Any) -> dict[str, Any]:
            return es.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)

        return search


class _Closed(Exception):
    """The tail ended while its backfill waited: nothing to fetch for it."""


class Backfill:
    """Opens tails' backfills through the one engine client and the tailor's budget."""

    def __init__(
        self, engine: Engine, budget: BackfillBudget | None = None, buffer: int = 1024 * 1024
    ) -> None:
        self.engine = engine
        self.buffer = buffer
        self.budget = budget if budget is not None else BackfillBudget(32 * 1024 * 1024)
        #: the backfills in progress (for /metrics)
        self.open_pages: set[BackfillPages] = set()

    async def open(self, index: str, query: str | dict[str, Any], size: int) -> BackfillPages:
        """The first page fetched; later pages as the client reads.

        Raises EngineUnavailable (503) or EngineRejected (the query does not
        run against this index: 400 with the engine's reason).
        """
        pages = BackfillPages(self.engine, self.budget, self.buffer, index, query, self.open_pages.discard)
        if size <= 0:
            return pages
        self.open_pages.add(pages)
        try:
            await pages.open(size)
        except BaseException:
            pages.close()
            raise
        return pages
