"""``format=ndjson`` and ``format=sse``: stock parsers, Last-Event-ID resume and gaps."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.tailor.helpers import send
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration

NODE_EVENTSOURCE = Path(__file__).with_name("eventsource_client.js")


def test_ndjson_lines_parse_one_by_one(tailor, beater, index):
    tail = Tail(tailor.url, {"i": index, "q": "fmt:nd", "format": "ndjson", "limit": 2})
    assert tail.status == 200
    assert tail.headers["content-type"].startswith("application/x-ndjson")
    send(beater.url, index, [{"fmt": "nd", "k": 1}, {"fmt": "nd", "k": 2, "_id": 7}])
    raw = tail.wait_end().decode()
    tail.close()
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    assert set(lines[0]) == {"subscription_id"}
    assert lines[1:] == [
        {"_index": index, "_source": {"fmt": "nd", "k": 1}},
        {"_index": index, "_source": {"fmt": "nd", "k": 2}, "_id": 7},
    ]


def sse(tailor_url: str, params: dict, last_event_id: str | None = None) -> Tail:
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    tail = Tail(tailor_url, {**params, "format": "sse"}, headers)
    assert tail.status == 200, getattr(tail, "body", b"")
    assert tail.headers["content-type"] == "text/event-stream"
    # Readable by EventSource on pages of other origins (the router's page).
    assert tail.headers["access-control-allow-origin"].startswith("http://127.0.0.1:")  # not "*"
    return tail


def test_sse_events_have_ids_and_json_data(tailor, beater, index):
    tail = sse(tailor.url, {"i": index, "q": "fmt:sse", "limit": 2})
    send(beater.url, index, [{"fmt": "sse", "k": 1}, {"fmt": "sse", "k": 2}])
    tail.wait_end()
    tail.close()
    kinds = [e["event"] for e in tail.events]
    assert kinds == ["subscription", "hit", "hit", "end"]
    assert tail.events[0]["id"] is None  # never moves the browser's Last-Event-ID
    hits = [e for e in tail.events if e["event"] == "hit"]
    assert [e.json["_source"]["k"] for e in hits] == [1, 2]
    epoch1, seq1 = hits[0]["id"].split(":")
    epoch2, seq2 = hits[1]["id"].split(":")
    assert epoch1 == epoch2
    assert int(seq2) == int(seq1) + 1
    assert tail.events[-1].json == {"end": "limit"}


def _hits_seen_by(tail: Tail, n: int) -> list[dict]:
    return [h["_source"]["k"] for h in tail.wait_hits(n)]


@pytest.mark.parametrize(
    ("history", "replayed", "gap"), [("100", [2, 3, 4, 5, 6], None), ("3", [4, 5, 6], 2)]
)
def test_sse_reconnect_resumes_from_history_or_reports_the_gap(
    start_tailor, beater, index, history, replayed, gap
):
    # The sid outlives its last SSE client as long as it lingers: far longer than this test, so
    # that a slow machine's watcher (below) cannot arrive after it was let go.
    tailor = start_tailor(ESTROM_TAILOR_SSE_HISTORY=history, ESTROM_TAILOR_SSE_LINGER="600")
    params = {"i": index, "q": "fmt:resume"}
    first = sse(tailor.url, params)
    send(beater.url, index, [{"fmt": "resume", "k": 1}])
    first.wait_hits(1)
    last_id = next(e["id"] for e in first.events if e["event"] == "hit")
    first.close()

    # A JSON client on the same sid proves the tailor has had hits 2..6.
    watcher = Tail(tailor.url, params)
    send(beater.url, index, [{"fmt": "resume", "k": k} for k in range(2, 7)])
    assert _hits_seen_by(watcher, 5) == [2, 3, 4, 5, 6]

    again = sse(tailor.url, params, last_event_id=last_id)
    try:
        assert [h["_source"]["k"] for h in again.wait_hits(len(replayed))] == replayed
        send(beater.url, index, [{"fmt": "resume", "k": 7}])
        assert [h["_source"]["k"] for h in again.wait_hits(len(replayed) + 1)][-1] == 7
    finally:
        again.close()
        watcher.close()
    gaps = [e.json for e in again.events if e["event"] == "gap"]
    if gap is None:
        assert gaps == []
    else:
        assert len(gaps) == 1
        assert gaps[0]["missed"] == gap
        assert gaps[0]["last_event_id"] == last_id
    kinds = [e["event"] for e in again.events]
    assert kinds.index("subscription") == 0
    assert "gap" not in kinds or kinds.index("gap") < kinds.index("hit")


def test_sse_unknown_event_id_reports_an_unknown_gap_then_streams(tailor, beater, index):
    tail = sse(tailor.url, {"i": index, "q": "fmt:unknown"}, last_event_id="deadbeef:41")
    try:
        tail.wait(lambda t: any(e["event"] == "gap" for e in t.events), what="gap event")
        send(beater.url, index, [{"fmt": "unknown", "k": 1}])
        assert tail.wait_hits(1)[0]["_source"] == {"fmt": "unknown", "k": 1}
    finally:
        tail.close()
    gap = next(e.json for e in tail.events if e["event"] == "gap")
    assert gap["missed"] is None
    assert gap["last_event_id"] == "deadbeef:41"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for a stock EventSource")
def test_a_stock_eventsource_reconnects_and_misses_nothing(tailor, beater, index):
    """WHATWG EventSource (Node's, as in browsers): each response ends after a
    second (timeout=1), the client reconnects on its own with Last-Event-ID,
    and across the reconnects every hit arrives once, in order."""
    from tests.tailor.tail_client import docs_path

    url = tailor.url + docs_path({"i": index, "q": "fmt:es", "format": "sse", "timeout": 1})
    proc = subprocess.Popen(
        ["node", "--experimental-eventsource", "--no-warnings", str(NODE_EVENTSOURCE), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events: list[dict] = []
    cond = threading.Condition()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with cond:
                events.append(json.loads(line))
                cond.notify_all()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def wait(predicate, what: str, timeout: float = 30.0) -> None:
        with cond:
            if not cond.wait_for(lambda: predicate(events), timeout):
                raise AssertionError(f"{what} not seen in {timeout}s: {events[-10:]!r}")

    def count(kind: str) -> int:
        return sum(e["type"] == kind for e in events)

    try:
        wait(lambda ev: count("open") >= 1, "first open")
        sent = 0
        # Three reconnects, each waited for: a few hits while connected, one
        # more sent while the client is away (after its error, before it opens
        # again), which it must get through Last-Event-ID on reconnecting.
        for reconnect in range(1, 4):
            for _ in range(3):
                send(beater.url, index, [{"fmt": "es", "k": sent}])
                sent += 1
                wait(lambda ev, n=sent: count("hit") >= n, f"hit {sent}")
            wait(lambda ev, r=reconnect: count("error") >= r, f"disconnect {reconnect}")
            send(beater.url, index, [{"fmt": "es", "k": sent}])
            sent += 1
            wait(lambda ev, r=reconnect: count("open") >= r + 1, f"reconnect {reconnect}")
        wait(lambda ev: count("hit") >= sent, "all hits")
    finally:
        proc.terminate()
        proc.wait(10)
    hits = [e for e in events if e["type"] == "hit"]
    assert [json.loads(e["data"])["_source"]["k"] for e in hits] == list(range(sent))
    assert sum(e["type"] == "open" for e in events) >= 4
    assert len({e["id"] for e in hits}) == len(hits)
