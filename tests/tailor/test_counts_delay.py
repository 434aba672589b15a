"""``GET /api/v0.1/counts?delay=`` against a real engine, router, beater and tailor.

Hits count in the window of their ``@timestamp``; a window's frame comes
``delay`` after its end, and a hit later than that sends it again
(``"revised": true``). Every assertion is on the latest frame of a window,
whichever way a slow machine delivered its hits (in time, or late and
revised), except where a hit is late by construction: stamped in a window
whose frame the test has already received.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, datetime

import pytest

from tests.http_client import engine_request, http
from tests.tailor.helpers import marker, send
from tests.tailor.tail_client import Tail
from tests.tailor.test_counts import COUNTS, assert_contiguous, frames, seconds, wait_frames
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

EVERY = 1.0
DELAY = "2s"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def doc(tag: str, service: str, t: float, **more) -> dict:
    return {"tag": tag, "service": service, "@timestamp": iso(t), **more}


def open_counts(tailor, index: str, tag: str, **params) -> Tail:
    """A delayed count stream, once its first frame came: the windows after it are live."""
    args = {"i": index, "q": f"tag:{tag}", "by": "service", "every": f"{EVERY:g}", "delay": DELAY}
    counts = Tail(tailor.url, {**args, **params}, endpoint=COUNTS)
    assert counts.status == 200, counts.body
    wait_frames(counts, lambda f: len(f) >= 1, "a first frame")
    return counts


def latest(found: list[dict]) -> dict[float, dict]:
    """Each window's last frame (its revision if it was sent again), by window start."""
    return {seconds(f["t"]): f for f in found}


def counted(found: list[dict]) -> int:
    return sum(f["total"] for f in latest(found).values())


def shape(frame: dict) -> tuple[int, dict]:
    return frame["total"], frame["by"]


def test_out_of_order_hits_count_in_their_own_windows(tailor, beater, index):
    tag = marker()
    counts = open_counts(tailor, index, tag)
    w = math.floor(time.time())  # a window after the first frame's; the next one is less than 2 s ahead
    newer = [doc(tag, "b", w + 1 + i / 10) for i in (9, 1, 5, 3)]
    older = [doc(tag, "a", w + i / 10) for i in (8, 2, 5)]
    send(beater.url, index, newer)
    send(beater.url, index, older)
    found = wait_frames(
        counts, lambda f: counted(f) >= 7 and max(latest(f)) > w + 1, "every hit counted, both windows sent"
    )
    counts.close()
    windows = latest(found)
    assert shape(windows[w]) == (3, {"a": 3})
    assert shape(windows[w + 1]) == (4, {"b": 4})
    assert counted(found) == 7
    assert_contiguous([f for f in found if not f.get("revised")], EVERY)


def test_a_hit_later_than_the_delay_sends_its_window_again_with_its_new_counts(tailor, beater, index):
    tag = marker()
    counts = open_counts(tailor, index, tag)
    w = math.floor(time.time())
    send(beater.url, index, [doc(tag, "api", w + 0.1), doc(tag, "api", w + 0.6), doc(tag, "web", w + 0.9)])
    wait_frames(counts, lambda f: w in latest(f) and latest(f)[w]["total"] == 3, "the window sent")
    n = len(frames(counts))
    too_late = metric(tailor, "estrom_tailor_count_too_late_total")
    revisions = metric(tailor, "estrom_tailor_count_revisions_total")
    # Its frame was received: these are late for sure. The first is older than the windows kept
    # for revision; hits come in order, so once the second one's revision is here, both were counted.
    send(beater.url, index, [doc(tag, "web", time.time() - 3600), doc(tag, "web", w + 0.3)])
    found = wait_frames(counts, lambda f: any(g.get("revised") for g in f[n:]), "a revision")
    counts.close()
    revised = [(seconds(f["t"]), shape(f)) for f in found[n:] if f.get("revised")]
    assert revised == [(w, (4, {"api": 2, "web": 2}))]
    assert counted(found) == 4
    assert metric(tailor, "estrom_tailor_count_too_late_total") == too_late + 1
    assert metric(tailor, "estrom_tailor_count_revisions_total") == revisions + 1


def test_counts_converge_to_the_stored_documents_per_window(tailor, beater, engine, index):
    tag = marker()
    counts = open_counts(tailor, index, tag)
    sent = seconds(frames(counts)[0]["t"])  # its frame was received: anything stamped in it is late
    w = math.floor(time.time())
    docs = [doc(tag, "api" if i % 3 else "web", t, n=i) for i, t in enumerate(stamps(sent, w))]
    store_through_beater(beater, index, docs)
    found = wait_frames(counts, lambda f: counted(f) >= len(docs), "every stored document counted")
    counts.close()
    windows = latest(found)
    assert counted(found) == len(docs)
    stored = engine_counts(engine, index, tag, min(windows), max(windows) + EVERY)
    assert {t: shape(f) for t, f in windows.items() if f["total"]} == stored


def test_since_with_delay_counts_each_window_once_across_the_hand_over(tailor, beater, engine, index):
    tag = marker()
    now = time.time()
    before = [doc(tag, "db", now - 20 + i * 1.7, n=i) for i in range(10)]
    # Published (a tail saw every one) before the stream opens: the engine's counts have them all.
    seen = Tail(tailor.url, {"i": index, "q": f"tag:{tag}"})
    store_through_beater(beater, index, before)
    seen.wait_hits(len(before), 30)
    seen.close()
    counts = open_counts(tailor, index, tag, since="30s")
    past = seconds(frames(counts)[0]["t"])
    w = math.floor(time.time())
    after = [doc(tag, "api", t, n=100 + i) for i, t in enumerate(stamps(past + 5, w))]
    store_through_beater(beater, index, after)
    total = len(before) + len(after)
    found = wait_frames(counts, lambda f: counted(f) >= total, "every stored document counted")
    counts.close()
    windows = latest(found)
    assert counted(found) == total
    stored = engine_counts(engine, index, tag, min(windows), max(windows) + EVERY)
    assert {t: shape(f) for t, f in windows.items() if f["total"]} == stored


def stamps(sent: float, w: int) -> list[float]:
    """Stamps in a window already sent (late: revised), in the open ones out of order, and ahead."""
    return [sent + 0.5, w + 0.7, w - 0.5, w + 0.2, w + 1.4, sent + 0.2, w - 1.5, w + 0.9]


def store_through_beater(beater, index: str, docs: list[dict]) -> None:
    """Written through the beater's bulk API: stored (searchable at once) and published."""
    body = "".join(json.dumps({"index": {}}) + "\n" + json.dumps(d) + "\n" for d in docs)
    resp = http(
        "POST", f"{beater.url}/{index}/_bulk?refresh=true", body, {"content-type": "application/x-ndjson"}
    )
    assert resp.status == 200, resp.body
    assert not resp.json()["errors"], resp.body


def engine_counts(engine, index: str, tag: str, start: float, end: float) -> dict[float, tuple[int, dict]]:
    """What a search of the stored documents says per window of [start, end): (total, per service)."""
    period = {"gte": round(start * 1000), "lt": round(end * 1000), "format": "epoch_millis"}
    matching = [{"match": {"tag": tag}}, {"range": {"@timestamp": period}}]
    per_window = {"fixed_interval": f"{round(EVERY * 1000)}ms", "field": "@timestamp"}
    services = {"s": {"terms": {"field": "service.keyword"}}}
    body = {"size": 0, "query": {"bool": {"filter": matching}}}
    body["aggs"] = {"w": {"date_histogram": per_window, "aggs": services}}
    buckets = engine_request(engine.url, "POST", f"/{index}/_search", body)["aggregations"]["w"]["buckets"]
    return {
        b["key"] / 1000: (b["doc_count"], {s["key"]: s["doc_count"] for s in b["s"]["buckets"]})
        for b in buckets
        if b["doc_count"]
    }


def metric(tailor, name: str) -> float:
    """A tailor-wide counter from /metrics (0 before its first)."""
    resp = wait_until(lambda: http("GET", tailor.url + "/metrics"), 10, "/metrics")
    found = re.search(rf"^{re.escape(name)} (\S+)$", resp.body.decode(), re.MULTILINE)
    return float(found[1]) if found else 0.0
