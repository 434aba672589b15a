"""``n=<k>``: the most recent stored documents that match, read in pages before the live hits.

A backfill is read in pages, as the client takes them, so that what a tail
holds is bounded whatever ``n`` and the documents' size: one search finds
the newest ``n`` matches' ids (no sources), then the sources come a page at
a time, oldest first, each page asked for only once the client has taken
the one before (``ClientStream``). A page holds about
``ESTROM_TAILOR_BACKFILL_BUFFER`` bytes; all pages of a tailor together
``ESTROM_TAILOR_BACKFILL_TOTAL`` (``BackfillBudget``: past it, a tail waits
for its next page until others have been read). Up to ``ONE_SEARCH``
documents are one search with their sources, as a small backfill always was.
With ``fields=``, each source is cut here as live hits are (the whole
source's digest kept for the hand-over: tailor/backfill/handover.py).
What the search finds, and in which order: tailor/backfill/search.py; how the
live hits after it are checked against it: tailor/backfill/handover.py.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from common.engine import Engine
from common.hits import Hit, make_hit
from tailor.backfill.budget import BackfillBudget
from tailor.backfill.handover import cut
from tailor.backfill.search import hits_from_search, search_ids, search_page, search_with_sources
from tailor.views.fields import compile_fields

#: Backfills of at most this many documents are one search with their sources.
ONE_SEARCH = 10
#: The most documents one page asks for, however small they are.
MAX_PAGE = 500
#: What the hand-over check and the list of ids keep per backfilled document,
#: reserved from the tailor's budget for as long as the backfill lasts.
PER_DOCUMENT = 256


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
        fields: tuple[str, ...] | None = None,
    ) -> None:
        self.engine = engine
        self.on_close = on_close
        self.budget = budget
        self.buffer = buffer
        self.index = index
        self.query = query
        #: cuts each source to ``fields=``; None: the whole source
        self.project = compile_fields(fields) if fields is not None else None
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
            found = hits_from_search(
                self.index, await self._run(search_with_sources(self.index, self.query, size))
            )
            self.first = self._cut(found)
            return
        ids = await self._run(search_ids(self.index, self.query, size))
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
        response = await self._run(search_page(self.index, page))
        by_key = {(h.get("_index"), h.get("_id")): h for h in response.get("hits", {}).get("hits", [])}
        del response
        hits: list[Hit] = []
        for name, doc_id in page:
            h = by_key.get((name, doc_id))
            if h is not None:  # deleted since: skipped
                hits.append(make_hit(str(h.get("_index") or name), h.get("_source", {}), h.get("_id")))
        return self._cut(hits)

    def _cut(self, hits: list[Hit]) -> list[Hit]:
        project = self.project
        return hits if project is None else [cut(hit, project) for hit in hits]

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

    async def open(
        self, index: str, query: str | dict[str, Any], size: int, fields: tuple[str, ...] | None = None
    ) -> BackfillPages:
        """The first page fetched; later pages as the client reads; sources cut to ``fields`` if given.

        Raises EngineUnavailable (503) or EngineRejected (the query does not
        run against this index: 400 with the engine's reason).
        """
        pages = BackfillPages(
            self.engine, self.budget, self.buffer, index, query, self.open_pages.discard, fields
        )
        if size <= 0:
            return pages
        self.open_pages.add(pages)
        try:
            await pages.open(size)
        except BaseException:
            pages.close()
            raise
        return pages
