"""``GET /api/v0.1/counts`` against a real engine, router, beater and tailor.

Exactness: every hit is counted once (the frames' totals and values sum to
what was sent, per value), windows follow each other without a hole, empty
ones included; ``since=`` frames equal the engine's own aggregation of the
same windows, and documents stored and then published around the hand-over
count once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.http_client import engine_request, http
from tests.tailor.helpers import marker, send
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration

COUNTS = "/api/v0.1/counts"


def frames(counts: Tail) -> list[dict]:
    return [line for line in counts.lines if "t" in line]


def wait_frames(counts: Tail, predicate, what: str, timeout: float = 30.0) -> list[dict]:
    counts.wait(lambda c: predicate(frames(c)), timeout, what)
    return frames(counts)


def seconds(t: str) -> float:
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


def assert_contiguous(found: list[dict], every: float) -> None:
    starts = [seconds(f["t"]) for f in found]
    holes = [
        (i, f["t"], b - a)
        for i, (f, a, b) in enumerate(zip(found, starts, starts[1:], strict=False))
        if abs(b - a - every) > 1e-6
    ]
    assert not holes, holes


def summed(found: list[dict]) -> tuple[int, Counter]:
    by: Counter = Counter()
    for f in found:
        by.update(f["by"])
    return sum(f["total"] for f in found), by


def test_frames_of_a_known_stream_count_every_hit_once_with_empty_windows(tailor, beater, index):
    tag = marker()
    counts = Tail(
        tailor.url, {"i": index, "q": f"tag:{tag}", "by": "service", "every": "0.5"}, endpoint=COUNTS
    )
    assert counts.status == 200
    assert counts.headers["content-type"] == "application/x-ndjson"
    wait_frames(counts, lambda f: len(f) >= 1, "a first (empty) frame")
    sent = ["api"] * 5 + ["web"] * 3 + ["db"]
    send(beater.url, index, [{"tag": tag, "service": s} for s in sent] + [{"tag": "other", "service": "api"}])
    found = wait_frames(counts, lambda f: summed(f)[0] >= len(sent), "every hit counted")
    # Two windows more, empty: the stream goes on when nothing matches.
    n = len(found)
    found = wait_frames(counts, lambda f: len(f) >= n + 2, "two more windows")
    counts.close()
    assert counts.lines[0]["subscription_id"]
    total, by = summed(found)
    assert (total, dict(by)) == (9, {"api": 5, "web": 3, "db": 1})
    assert [f["total"] for f in found[n:]] == [0, 0]
    assert_contiguous(found, 0.5)


def test_by_with_more_values_than_k_nested_and_missing_fields(tailor, beater, index):
    tag = marker()
    params = {"i": index, "q": f"tag:{tag}", "by": "http.status", "k": "2", "every": "1"}
    counts = Tail(tailor.url, params, endpoint=COUNTS)
    docs = (
        [{"tag": tag, "http": {"status": 200}}] * 4
        + [{"tag": tag, "http": {"status": 500}}] * 3
        + [{"tag": tag, "http": {"status": 404}}] * 2
        + [{"tag": tag, "http": {"status": 302}}]
        + [{"tag": tag, "http": {"method": "GET"}}, {"tag": tag}]
    )
    send(beater.url, index, docs)  # one request: one event, so one window
    found = wait_frames(counts, lambda f: summed(f)[0] >= len(docs), "every hit counted")
    counts.close()
    assert summed(found)[0] == len(docs)
    (full,) = [f for f in found if f["total"]]
    assert full["by"] == {"200": 4, "500": 3, "_other": 3, "_missing": 2}


def test_since_sends_the_engine_s_counts_then_live_without_double_counting(
    start_tailor, beater, engine, index
):
    # Live hits are checked against the past windows' documents far longer than a loaded
    # machine can take between storing one and publishing it (ESTROM_TAILOR_HANDOVER).
    tailor = start_tailor(ESTROM_TAILOR_HANDOVER="600")
    tag = marker()
    now = time.time()
    every = 2.0
    # 60 windows: the stored documents (30 s old at most) are inside the period however long
    # storing and opening take, as each of those steps fails on its own 30 s timeout first.
    since = 120
    stored = [
        {"tag": tag, "service": "api" if i % 3 else "web", "@timestamp": _iso(now - 30 + i * 1.3)}
        for i in range(20)
    ]
    store(engine, index, stored)
    # Stored now, published after the counts stream opened: a sender that writes to the
    # engine first, then to estrom. These must count once. They are stamped and stored just
    # before the stream opens and published just after, as the tailor checks live hits
    # against the documents of its last 10 s only (the hand-over, tailor/counts/).
    around = [{"tag": tag, "service": "db", "n": i, "@timestamp": _iso(time.time() - 0.2)} for i in range(4)]
    store(engine, index, around)

    params = {"i": index, "q": f"tag:{tag}", "by": "service", "every": f"{every:g}", "since": f"{since}s"}
    # Windows wholly before the one the stream opened in are the past period's.
    past_end = (time.time() // every) * every - every
    counts = Tail(tailor.url, params, endpoint=COUNTS)
    assert counts.status == 200
    send(beater.url, index, around)
    live_only = [{"tag": tag, "service": "web", "live": True}] * 3
    send(beater.url, index, live_only)
    # A fence: hits reach a stream in publish order, so once the fence is counted every hit
    # before it is, duplicates included.
    send(beater.url, index, [{"tag": tag, "service": "fence"}])
    found = wait_frames(counts, lambda f: summed(f)[1]["fence"] >= 1, "the fence counted")
    counts.close()
    assert_contiguous(found, every)
    total, by = summed(found)
    assert total == len(stored) + len(around) + len(live_only) + 1, found
    assert dict(by) == {"api": 13, "web": 7 + 3, "db": 4, "fence": 1}

    # The past frames are the engine's own aggregation of the same windows.
    past = [f for f in found if seconds(f["t"]) < past_end]
    # Every stored document is in them: stamped 5.3 s or more before ``now``, past_end at most 4 s.
    assert summed(past)[0] >= len(stored), past
    agg = engine_request(
        engine.url,
        "POST",
        f"/{index}/_search",
        {
            "size": 0,
            "query": {
                "bool": {
                    "filter": [
                        {"match": {"tag": tag}},
                        {
                            "range": {
                                "@timestamp": {
                                    "gte": round(seconds(found[0]["t"]) * 1000),
                                    "lt": round(past_end * 1000),
                                    "format": "epoch_millis",
                                }
                            }
                        },
                    ]
                }
            },
            "aggs": {
                "w": {
                    "date_histogram": {"field": "@timestamp", "fixed_interval": "2000ms"},
                    "aggs": {"s": {"terms": {"field": "service.keyword"}}},
                }
            },
        },
    )
    engine_windows = {
        b["key"] / 1000: (b["doc_count"], {t["key"]: t["doc_count"] for t in b["s"]["buckets"]})
        for b in agg["aggregations"]["w"]["buckets"]
    }
    for f in past:
        assert (f["total"], f["by"]) == engine_windows.get(seconds(f["t"]), (0, {})), f


def store(engine, index: str, docs: list[dict]) -> None:
    """Index straight into the engine, searchable at once."""
    body = "".join(json.dumps({"index": {}}) + "\n" + json.dumps(doc) + "\n" for doc in docs)
    resp = http(
        "POST",
        f"{engine.url}/{index}/_bulk?refresh=true",
        body.encode(),
        {"content-type": "application/x-ndjson"},
    )
    assert resp.status == 200, resp.body
    assert not resp.json()["errors"], resp.body


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_sse_counts_and_errors_before_streaming(tailor, index):
    counts = Tail(
        tailor.url,
        {"i": index, "q": "sse:yes", "format": "sse", "every": "0.2", "limit": "2"},
        endpoint=COUNTS,
    )
    assert counts.headers["content-type"] == "text/event-stream"
    counts.wait_end(20)
    names = [e["event"] for e in counts.events]
    assert names == ["subscription", "count", "count", "end"]
    assert counts.events[1].json["total"] == 0
    bad = Tail(tailor.url, {"i": index, "q": "level:(error"}, endpoint=COUNTS)
    assert bad.status == 400
    assert json.loads(bad.body)["error"] == "invalid_query"
    unknown = Tail(tailor.url, {"s": "0123456789abcdef"}, endpoint=COUNTS)
    assert unknown.status == 404
