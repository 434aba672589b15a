"""Backfills read page by page: the tailor's budget, the pages, and a stream that pulls them as it drains."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tailor.backfill.budget import BackfillBudget
from tailor.backfill.handover import Deduper
from tailor.backfill.pages import ONE_SEARCH, PER_DOCUMENT, BackfillPages
from tailor.streaming.format import JsonFraming, NdjsonFraming
from tailor.streaming.request_watch import RequestWatch
from tailor.tails.stream import ClientStream, StreamStats

# -- the budget ---------------------------------------------------------------------


def test_budget_grants_in_order_and_waits_for_room():
    budget = BackfillBudget(100)
    first = budget.acquire(60)
    assert first.called
    assert budget.held == 60
    second = budget.acquire(60)
    third = budget.acquire(10)  # fits, but waits behind the second: first come, first served
    assert not second.called
    assert not third.called
    assert budget.waiting == 2
    budget.release(60)
    assert second.called
    assert third.called
    assert budget.held == 70
    assert budget.waiting == 0


def test_a_request_larger_than_the_budget_goes_when_nothing_else_is_held():
    budget = BackfillBudget(100)
    held = budget.acquire(50)
    big = budget.acquire(500)
    assert held.called
    assert not big.called
    budget.release(50)
    assert big.called
    assert budget.held == 500


def test_a_cancelled_waiter_leaves_the_queue_and_lets_the_next_in():
    budget = BackfillBudget(100)
    budget.acquire(90)
    blocked = budget.acquire(50)
    small = budget.acquire(5)
    blocked.addErrback(lambda _: None)
    blocked.cancel()
    assert small.called
    assert budget.held == 95
    assert budget.waiting == 0


# -- the pages ----------------------------------------------------------------------


class PagedEngine:
    """An engine answering the ids search, then searches by ids, from ``docs`` (oldest first)."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.bodies: list[dict[str, Any]] = []
        self.hold = False
        self.held: list[Deferred[None]] = []

    async def run(self, fn: Any) -> Any:
        if self.hold:
            d: Deferred[None] = Deferred()
            self.held.append(d)
            await d
        return fn(self)

    def release(self) -> None:
        held, self.held = self.held, []
        for d in held:
            d.callback(None)

    def search(self, index: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.bodies.append(body)
        stored = [{"_index": index, "_id": str(i), "_source": doc} for i, doc in enumerate(self.docs)]
        if body.get("_source") is False:
            assert kwargs["filter_path"] == ["hits.hits._index", "hits.hits._id"]
            newest = list(reversed(stored))[: body["size"]]
            return {"hits": {"hits": [{"_index": h["_index"], "_id": h["_id"]} for h in newest]}}
        if "bool" in body["query"]:
            (clause,) = body["query"]["bool"]["should"]
            wanted = set(clause["bool"]["filter"][1]["ids"]["values"])
            return {"hits": {"hits": [h for h in stored if h["_id"] in wanted][::-1]}}  # any order
        return {"hits": {"hits": list(reversed(stored))[: body["size"]]}}


def docs(n: int, pad: int = 100) -> list[dict[str, Any]]:
    return [{"n": i, "pad": "x" * pad} for i in range(n)]


def run(d: Any) -> Any:
    out: list[Any] = []
    Deferred.fromCoroutine(d).addBoth(out.append)
    assert out, "not done"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def test_small_backfills_are_one_search_with_their_sources():
    engine = PagedEngine(docs(5))
    budget = BackfillBudget(10_000)
    pages = BackfillPages(engine, budget, 1000, "l", "x")  # type: ignore[arg-type]
    run(pages.open(ONE_SEARCH))
    assert [h["_source"]["n"] for h in pages.first] == [0, 1, 2, 3, 4]
    assert pages.done
    assert len(engine.bodies) == 1
    assert budget.held == 1000  # the page's reservation, until the client has read it
    pages.page_read()
    assert budget.held == 0


def test_large_backfills_find_ids_then_fetch_pages_sized_after_the_documents():
    engine = PagedEngine(docs(50, pad=100))
    budget = BackfillBudget(100_000)
    pages = BackfillPages(engine, budget, 1000, "l", "x")  # type: ignore[arg-type]
    run(pages.open(40))
    assert [h["_source"]["n"] for h in pages.first] == [10]  # the oldest of the newest 40
    assert budget.held == 40 * PER_DOCUMENT + 1000
    pages.framed(150, 1)  # about 150 bytes a hit: the next pages hold 1000 // 150 = 6
    got = [h["_source"]["n"] for h in pages.first]
    while not pages.done:
        pages.page_read()
        page = run(pages.next())
        assert 1 <= len(page) <= 6
        got += [h["_source"]["n"] for h in page]
    assert got == list(range(10, 50))
    pages.handover_over()
    pages.page_read()
    assert budget.held == 0


def test_closing_gives_everything_back_and_cancels_a_wait():
    engine = PagedEngine(docs(30))
    budget = BackfillBudget(2000)
    other = budget.acquire(1900)
    assert other.called
    pages = BackfillPages(engine, budget, 1000, "l", "x")  # type: ignore[arg-type]
    opened = Deferred.fromCoroutine(pages.open(20))
    assert not opened.called
    assert budget.waiting == 1
    opened.addErrback(lambda _: None)
    pages.close()
    assert budget.waiting == 0
    assert budget.held == 1900
    budget.release(1900)
    assert budget.held == 0


# -- a stream reading pages ---------------------------------------------------------


class Transport:
    def __init__(self) -> None:
        self.lost = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def loseConnection(self) -> None:
        self.lost = True

    def abortConnection(self) -> None:
        self.lost = True


class SlowRequest:
    """A request whose transport takes ``window`` bytes and then pauses its producer until drained."""

    def __init__(self, window: int) -> None:
        self.transport = Transport()
        self.window = window
        self.buffered = 0
        self.written = bytearray()
        self.producer: Any = None
        self.finished = False
        self.headers: dict[bytes, bytes] = {}
        self._notify: list[Deferred[None]] = []

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.written += data
        self.buffered += len(data)
        if self.buffered > self.window and self.producer is not None:
            self.producer.pauseProducing()

    def drain(self) -> None:
        """The client read everything sent so far."""
        self.buffered = 0
        if self.producer is not None:
            self.producer.resumeProducing()

    def notifyFinish(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._notify.append(d)
        return d

    def finish(self) -> None:
        self.finished = True
        for d in self._notify:
            d.callback(None)


class Stats(StreamStats):
    def __init__(self) -> None:
        self.drops: list[str] = []

    def dropped(self, reason: str) -> None:
        self.drops.append(reason)


def stream_of(
    request: SlowRequest, clock: Clock, framing: Any = None, **kw: Any
) -> tuple[ClientStream, Stats]:
    stats = Stats()
    stream = ClientStream(
        request,  # type: ignore[arg-type]
        framing or NdjsonFraming(),
        clock,
        limit=kw.get("limit"),
        timeout=None,
        heartbeat=15.0,
        max_pending=kw.get("max_pending", 100_000),
        stats=stats,
        on_gone=lambda _s: None,
        watch=RequestWatch(request),  # type: ignore[arg-type]
        backfill_stall=5.0,
    )
    return stream, stats


def lines(request: SlowRequest) -> list[Any]:
    return [json.loads(line) for line in bytes(request.written).decode().splitlines() if line.strip()]


def opened(engine: PagedEngine, budget: BackfillBudget, n: int, buffer: int = 1000) -> BackfillPages:
    pages = BackfillPages(engine, budget, buffer, "l", "x")  # type: ignore[arg-type]
    run(pages.open(n))
    return pages


def test_the_next_page_is_fetched_only_once_the_client_took_the_last():
    engine = PagedEngine(docs(40, pad=300))
    budget = BackfillBudget(100_000)
    request, clock = SlowRequest(window=500), Clock()
    stream, _ = stream_of(request, clock)
    stream.deliver([(1, {"_index": "l", "_source": {"live": 1}})])  # held while the stream is set up
    stream.start("sid", str, opened(engine, budget, 30))
    # Each page goes out in one write and pauses the stream: the next is asked for on draining.
    for _ in range(100):
        searches = len(engine.bodies)
        request.drain()
        if len(engine.bodies) == searches:
            break
        assert len(engine.bodies) == searches + 1, "one page per drain"
    got = [line["_source"] for line in lines(request)[1:]]
    assert [s["n"] for s in got if "n" in s] == list(range(10, 40))
    assert got[-1] == {"live": 1}  # the held live hit follows the backfill
    request.drain()
    assert budget.held == 30 * PER_DOCUMENT  # the ids' share, until the hand-over window ends
    clock.advance(11)
    assert budget.held == 0


def test_a_page_left_unread_gets_the_reader_dropped_and_told():
    engine = PagedEngine(docs(40, pad=300))
    budget = BackfillBudget(100_000)
    request, clock = SlowRequest(window=100), Clock()
    stream, stats = stream_of(request, clock)
    stream.start("sid", str, opened(engine, budget, 30))
    assert budget.held > 0
    clock.advance(5.0)
    assert stats.drops == ["slow_backfill_reader"]
    last = lines(request)[-1]
    assert last["error"] == "slow_reader"
    assert "backfill" in last["reason"]
    assert budget.held == 0
    assert request.finished


def test_live_hits_piling_up_behind_a_backfill_get_the_reader_dropped():
    engine = PagedEngine(docs(40, pad=300))
    budget = BackfillBudget(100_000)
    request, clock = SlowRequest(window=100), Clock()
    stream, stats = stream_of(request, clock, max_pending=1000)
    stream.start("sid", str, opened(engine, budget, 30))
    for i in range(20):
        stream.deliver([(i, {"_index": "l", "_source": {"live": i, "pad": "y" * 100}})])
    assert stats.drops == ["slow_reader"]
    assert "behind the backfill" in lines(request)[-1]["reason"]
    assert budget.held == 0


def test_a_limit_reached_in_the_backfill_ends_it_and_frees_its_bytes():
    engine = PagedEngine(docs(40, pad=10))
    budget = BackfillBudget(100_000)
    request, clock = SlowRequest(window=10_000), Clock()
    stream, _ = stream_of(request, clock, framing=JsonFraming(), limit=3)
    stream.start("sid", str, opened(engine, budget, 30))
    request.drain()
    request.drain()
    doc = json.loads(bytes(request.written))
    assert [h["_source"]["n"] for h in doc["hits"]] == [10, 11, 12]
    assert budget.held == 0


def test_a_gap_during_the_backfill_keeps_its_place_among_the_held_hits():
    engine = PagedEngine(docs(40, pad=300))
    budget = BackfillBudget(100_000)
    request, clock = SlowRequest(window=100), Clock()
    stream, _ = stream_of(request, clock)
    stream.start("sid", str, opened(engine, budget, 30))
    stream.deliver([(1, {"_index": "l", "_source": {"live": 1}})])
    stream.gap({"missed": None})
    stream.deliver([(2, {"_index": "l", "_source": {"live": 2}})])
    for _ in range(100):
        request.drain()
    tail = lines(request)[-3:]
    assert tail == [
        {"_index": "l", "_source": {"live": 1}},
        {"gap": {"missed": None}},
        {"_index": "l", "_source": {"live": 2}},
    ]


def test_a_live_copy_of_a_backfilled_document_is_dropped_once_the_backfill_is_in():
    engine = PagedEngine(docs(20, pad=10))
    budget = BackfillBudget(100_000)
    request, clock = SlowRequest(window=100_000), Clock()
    stream, _ = stream_of(request, clock)
    stream.start("sid", str, opened(engine, budget, 15))
    stream.deliver([(1, {"_index": "l", "_source": {"n": 19, "pad": "x" * 10}})])  # stored and published
    for _ in range(20):
        request.drain()
    ns = [line["_source"]["n"] for line in lines(request)[1:]]
    assert ns == list(range(5, 20))


def test_the_deduper_keeps_digests_not_documents():
    d = Deduper([{"_index": "l", "_source": {"pad": "x" * 100_000}, "_id": "a"}])
    assert all(len(k) == 16 for k in d._sources)
    assert d.seen({"_index": "l", "_source": {"pad": "x" * 100_000}})
