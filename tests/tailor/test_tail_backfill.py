"""``n=<k>``: stored documents first (newest k, oldest first), then live, no gap, no duplicate."""

from __future__ import annotations

import json
import threading

import pytest

from tests.http_client import http
from tests.tailor.helpers import send, send_as_a_sender_would
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration


def bulk(engine_url: str, index: str, docs: list[dict]) -> None:
    """Index straight into Elasticsearch, visible to search at once."""
    lines = []
    for doc in docs:
        meta = {"index": {"_id": doc["_id"]}} if "_id" in doc else {"index": {}}
        lines.append(json.dumps(meta))
        lines.append(json.dumps({k: v for k, v in doc.items() if k != "_id"}))
    resp = http(
        "POST",
        f"{engine_url}/{index}/_bulk?refresh=true",
        "\n".join(lines) + "\n",
        {"content-type": "application/x-ndjson"},
    )
    assert resp.status == 200, resp.body
    assert not resp.json()["errors"], resp.body


def test_backfill_is_newest_by_timestamp_oldest_first_then_live(tailor, beater, engine, index):
    # Stored out of time order: the sort, not the insertion, decides.
    stored = [
        {"@timestamp": "2024-01-01T00:00:03Z", "level": "error", "n": 3},
        {"@timestamp": "2024-01-01T00:00:01Z", "level": "error", "n": 1},
        {"@timestamp": "2024-01-01T00:00:05Z", "level": "info", "n": 5},
        {"@timestamp": "2024-01-01T00:00:04Z", "level": "error", "n": 4},
        {"@timestamp": "2024-01-01T00:00:02Z", "level": "error", "n": 2},
    ]
    bulk(engine.url, index, stored)
    tail = Tail(tailor.url, {"i": index, "q": "level:error", "n": 3})
    try:
        assert tail.status == 200
        backfilled = tail.wait_hits(3)
        assert [h["_source"]["n"] for h in backfilled] == [2, 3, 4]
        assert all(h["_index"] == index and "_id" in h for h in backfilled)
        send(beater.url, index, [{"level": "error", "n": 6}, {"level": "info", "n": 7}])
        hits = tail.wait_hits(4)
    finally:
        tail.close()
    assert [h["_source"]["n"] for h in hits] == [2, 3, 4, 6]
    assert hits[3] == {"_index": index, "_source": {"level": "error", "n": 6}}


def test_backfill_without_timestamp_follows_index_order(tailor, engine, index):
    bulk(engine.url, index, [{"msg": f"boot step {k}", "k": k} for k in range(6)])
    tail = Tail(tailor.url, {"i": index, "q": {"match": {"msg": "boot"}}, "n": 4, "limit": 4})
    doc = tail.document()
    tail.close()
    assert [h["_source"]["k"] for h in doc["hits"]] == [2, 3, 4, 5]


def test_backfill_of_an_index_that_does_not_exist_is_empty(tailor, index):
    tail = Tail(tailor.url, {"i": index, "q": "x", "n": 5, "timeout": 0.5})
    assert tail.document() == {"subscription_id": tail.document()["subscription_id"], "hits": []}
    tail.close()


def test_backfill_counts_towards_limit(tailor, engine, index):
    bulk(engine.url, index, [{"v": k} for k in range(5)])
    tail = Tail(tailor.url, {"i": index, "q": "v:*", "n": 5, "limit": 2})
    assert [h["_source"]["v"] for h in tail.document()["hits"]] == [0, 1]
    tail.close()


@pytest.mark.parametrize("with_ids", [True, False], ids=["by-id", "by-source"])
def test_hand_over_while_documents_are_stored_and_published(start_tailor, beater, engine, index, with_ids):
    """A writer stores each document, then publishes it, while the tail starts with n:
    every document after the backfill's first arrives exactly once, in order."""
    # Live hits are checked against the backfill far longer than a loaded machine can take
    # between storing a document and publishing it (ESTROM_TAILOR_HANDOVER).
    tailor = start_tailor(ESTROM_TAILOR_HANDOVER="600")
    total, backfill = 60, 10
    started = threading.Event()
    failures: list[BaseException] = []

    def doc(i: int) -> dict:
        d = {"@timestamp": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "src": "writer", "i": i}
        if with_ids:
            d["_id"] = f"doc-{i}"
        return d

    def writer() -> None:
        try:
            for i in range(total):
                bulk(engine.url, index, [doc(i)])
                send_as_a_sender_would(beater.url, index, [doc(i)])
                if i == 25:
                    started.set()
        except BaseException as exc:
            failures.append(exc)
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert started.wait(60)
    tail = Tail(tailor.url, {"i": index, "q": "src:writer", "n": backfill})
    try:
        assert tail.status == 200
        thread.join(120)
        assert not failures
        tail.wait(lambda t: any(h["_source"]["i"] == total - 1 for h in t.hits), what="last document")
        hits = list(tail.hits)
    finally:
        tail.close()
    numbers = [h["_source"]["i"] for h in hits]
    first = numbers[0]
    assert numbers == list(range(first, total)), numbers
    assert len(numbers) >= backfill
    if with_ids:
        assert [h["_id"] for h in hits] == [f"doc-{i}" for i in numbers]
