"""``delay=``: live hits held and released in ``@timestamp`` order, late ones marked, through the real stack.

Documents carry their own ``@timestamp`` (the beater stamps nothing). What
is asserted holds however slow the machine: a hit is either in its place or
marked late, never lost or repeated; where timing could decide, the test
makes it not matter (one event, or a hit released before the next is sent).
"""

from __future__ import annotations

import json
import threading

import pytest

from devstack.metrics_page import metric
from tests.tailor.helpers import send, send_as_a_sender_would
from tests.tailor.node_eventsource import NodeEventSource, node_available
from tests.tailor.tail_client import Tail, docs_path
from tests.tailor.test_tail_backfill import bulk

pytestmark = pytest.mark.integration


def ts(n: int) -> str:
    return f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}Z"


def doc(tag: str, n: int, **extra) -> dict:
    return {"tag": tag, "n": n, "@timestamp": ts(n), **extra}


def assert_ordered_or_late(hits: list[dict]) -> None:
    """Each hit is in @timestamp order, or marked late because a later one was released before it."""
    latest = ""
    for hit in hits:
        stamp = hit["_source"]["@timestamp"]
        assert hit.get("_late", False) == (stamp < latest), hits
        latest = max(latest, stamp)


def test_hits_of_one_event_come_out_in_timestamp_order(tailor, beater, index):
    tail = Tail(tailor.url, {"i": index, "q": "tag:one", "delay": "2s", "format": "ndjson", "limit": 4})
    send(beater.url, index, [doc("one", n) for n in (3, 1, 4, 2)])
    tail.wait_end(30)
    tail.close()
    assert [h["_source"]["n"] for h in tail.hits] == [1, 2, 3, 4]
    assert not any("_late" in h for h in tail.hits)


def test_out_of_order_ingests_across_two_beaters_come_out_in_timestamp_order(
    tailor, beater, start_beater, index
):
    other = start_beater()
    tail = Tail(tailor.url, {"i": index, "q": "tag:two", "delay": "2s", "format": "ndjson"})
    late_before = metric(tailor.url, "estrom_tailor_late_hits_total")
    together = threading.Barrier(2)
    failures: list[BaseException] = []

    def ingest(url: str, numbers: tuple[int, ...]) -> None:
        try:
            together.wait(30)
            send(url, index, [doc("two", n) for n in numbers])
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=ingest, args=(beater.url, (6, 2, 4))),
        threading.Thread(target=ingest, args=(other.url, (5, 1, 3))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    send(beater.url, index, [doc("two", 7, marker=True)])  # newest: it comes last
    tail.wait(lambda t: any(h["_source"].get("marker") for h in t.hits), 30, "the marker")
    tail.close()
    hits = list(tail.hits)
    assert sorted(h["_source"]["n"] for h in hits) == [1, 2, 3, 4, 5, 6, 7]
    # Both requests reach the tailor well within the delay unless the machine stalls for
    # seconds; then the hits that came too late say so, and are still delivered once.
    assert_ordered_or_late(hits)
    late = sum(1 for h in hits if h.get("_late"))
    assert metric(tailor.url, "estrom_tailor_late_hits_total") - late_before == late
    if not late:
        assert [h["_source"]["n"] for h in hits] == [1, 2, 3, 4, 5, 6, 7]


def test_a_hit_older_than_one_released_is_delivered_marked_late_in_every_format(tailor, beater, index):
    params = {"i": index, "q": "tag:late", "delay": "1s", "limit": 3}
    tails = {fmt: Tail(tailor.url, {**params, "format": fmt}) for fmt in ("json", "ndjson", "sse")}
    send(beater.url, index, [doc("late", 10)])
    for tail in tails.values():
        tail.wait_hits(1, 30)  # released: from now on anything older is late
    send(beater.url, index, [doc("late", 5)])
    send(beater.url, index, [doc("late", 11)])
    for tail in tails.values():
        tail.wait_end(30)
        tail.close()
    assert [(h["_source"]["n"], h.get("_late")) for h in tails["json"].document()["hits"]] == [
        (10, None),
        (5, True),
        (11, None),
    ]
    assert tails["ndjson"].hits == tails["sse"].hits == tails["json"].document()["hits"]
    assert [e["event"] for e in tails["sse"].events].count("hit") == 3


class StoreThenPublish(threading.Thread):
    """A sender that stores each document, then publishes it: searchable before its live hit."""

    def __init__(
        self, engine_url: str, beater_url: str, index: str, docs: list[dict], signal_at: int
    ) -> None:
        super().__init__(name="store-then-publish")
        self.urls, self.index, self.docs = (engine_url, beater_url), index, docs
        self.signal_at = signal_at
        #: set once ``signal_at`` documents were sent, or on failure
        self.midway = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        engine_url, beater_url = self.urls
        try:
            for sent, document in enumerate(self.docs, 1):
                bulk(engine_url, self.index, [document])
                send_as_a_sender_would(beater_url, self.index, [document])
                if sent == self.signal_at:
                    self.midway.set()
        except BaseException as exc:
            self.failure = exc
        self.midway.set()


@pytest.mark.parametrize("with_ids", [True, False], ids=["by-id", "by-source"])
def test_backfill_then_delayed_live_hits_without_gap_or_duplicate(tailor, beater, engine, index, with_ids):
    """Documents stored then published while a tail starts with n= and a delay: every document
    after the backfill's first arrives exactly once, in order."""
    total = 50
    docs = [{**doc("handover", i), **({"_id": f"doc-{i}"} if with_ids else {})} for i in range(total)]
    writer = StoreThenPublish(engine.url, beater.url, index, docs, signal_at=20)
    writer.start()
    assert writer.midway.wait(60)
    tail = Tail(tailor.url, {"i": index, "q": "tag:handover", "n": 10, "delay": "2s"})
    try:
        assert tail.status == 200
        writer.join(120)
        assert writer.failure is None
        tail.wait(lambda t: any(h["_source"]["n"] == total - 1 for h in t.hits), 60, "last document")
        numbers = [h["_source"]["n"] for h in tail.hits]
        late = [h for h in tail.hits if "_late" in h]
    finally:
        tail.close()
    assert numbers == list(range(numbers[0], total)), numbers
    assert len(numbers) >= 10  # the backfill's ten newest first, then every live one
    assert late == []


@pytest.mark.skipif(not node_available(), reason="needs node for a stock EventSource")
def test_a_stock_eventsource_with_a_delay_resumes_from_the_view_and_misses_nothing(tailor, beater, index):
    """Node's WHATWG EventSource on a delayed tail whose responses end every 2 s: it reconnects
    with Last-Event-ID, and hits released while it was away come from the view's history."""
    url = tailor.url + docs_path({"i": index, "q": "tag:es", "format": "sse", "delay": "1s", "timeout": 2})
    client = NodeEventSource(url)
    sent = 0

    def one_more() -> None:
        nonlocal sent
        send(beater.url, index, [doc("es", sent)])
        sent += 1

    try:
        client.wait(lambda c: c.count("open") >= 1, "first open")
        for reconnect in range(1, 4):
            # Hits one at a time, each waited for, until this response ends...
            while client.count("error") < reconnect:
                assert sent < 60, f"response {reconnect} never ended"
                one_more()
                client.wait(lambda c, n=sent: c.count("hit") >= n, f"hit {sent}")
            # ... then one while the client is away (it retries after 2 s): the view releases it
            # into its history, which the reconnect's Last-Event-ID resumes from.
            one_more()
            client.wait(lambda c, r=reconnect: c.count("open") >= r + 1, f"reconnect {reconnect}")
        client.wait(lambda c: c.count("hit") >= sent, "all hits")
    finally:
        client.close()
    hits = client.of_type("hit")
    assert [json.loads(e["data"])["_source"]["n"] for e in hits] == list(range(sent))
    assert len({e["id"] for e in hits}) == len(hits)
    assert len({e["id"].split(":")[0] for e in hits}) == 1  # the view's epoch throughout
