"""Framing of the three tail formats: exact bytes, and every prefix closes into valid data."""

from __future__ import annotations

import json

import pytest

from tailor.streaming.format import JsonFraming, NdjsonFraming, SseFraming, framing_for
from tests.tailor.tail_client import parse_sse

HITS = [
    {"_index": "logs", "_source": {"msg": "a\nb", "n": 1}},
    {"_index": "logs", "_source": {"msg": "ünïcode"}, "_id": "x"},
    {"_index": "logs", "_source": {}},
]


def test_json_opening_is_the_contract():
    assert JsonFraming().opening("0123456789abcdef") == b'{"subscription_id": "0123456789abcdef", "hits": ['


@pytest.mark.parametrize("count", range(len(HITS) + 1))
@pytest.mark.parametrize("error", [None, "router_unavailable"])
def test_json_every_prefix_closes_into_one_document(count, error):
    f = JsonFraming()
    body = f.opening("s") + f.heartbeat()
    for i, hit in enumerate(HITS[:count]):
        body += f.hit(hit, "", first=i == 0) + f.heartbeat()
    doc = json.loads(body + f.closing("error" if error else "limit", error, "why" if error else None))
    assert doc["subscription_id"] == "s"
    assert doc["hits"] == HITS[:count]
    if error:
        assert list(doc) == ["subscription_id", "hits", "error", "reason"]
        assert (doc["error"], doc["reason"]) == (error, "why")
    else:
        assert list(doc) == ["subscription_id", "hits"]


def test_json_one_hit_per_line_and_no_trailing_comma():
    f = JsonFraming()
    body = f.opening("s") + f.hit(HITS[0], "", True) + f.hit(HITS[1], "", False)
    lines = body.split(b"\n")
    assert lines[0] == f.opening("s")
    assert json.loads(lines[1].rstrip(b",")) == HITS[0]
    assert lines[1].endswith(b",")
    assert json.loads(lines[2]) == HITS[1]
    assert len(lines) == 3


def test_ndjson_lines():
    f = NdjsonFraming()
    body = f.opening("s") + b"".join(f.hit(h, "", False) for h in HITS) + f.heartbeat()
    body += f.closing("error", "slow_reader", "too slow")
    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    assert lines == [{"subscription_id": "s"}, *HITS, {"error": "slow_reader", "reason": "too slow"}]
    assert NdjsonFraming().closing("limit") == b""


def test_ndjson_gap_is_one_line_of_its_own():
    f = NdjsonFraming()
    body = f.opening("s") + f.gap({"missed": None, "seconds": 1.5}) + f.hit(HITS[0], "", False)
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert lines == [{"subscription_id": "s"}, {"gap": {"missed": None, "seconds": 1.5}}, HITS[0]]
    assert (NdjsonFraming.gaps, SseFraming.gaps, JsonFraming.gaps) == (True, True, False)
    assert JsonFraming().gap({"missed": 1}) == b""


def test_sse_events_parse_as_a_browser_would():
    f = SseFraming()
    body = f.opening("s") + f.heartbeat()
    body += f.gap({"missed": 2})
    body += b"".join(f.hit(h, f"ep:{i}", False) for i, h in enumerate(HITS))
    body += f.closing("timeout")
    events = parse_sse(body.decode())
    assert [e["event"] for e in events] == ["subscription", "gap", "hit", "hit", "hit", "end"]
    assert events[0].json == {"subscription_id": "s"}
    assert events[0]["id"] is None
    assert [e.json for e in events if e["event"] == "hit"] == HITS
    assert [e["id"] for e in events if e["event"] == "hit"] == ["ep:0", "ep:1", "ep:2"]
    assert events[-1].json == {"end": "timeout"}
    assert b"retry: " in f.opening("s")


def test_sse_error_end():
    event = parse_sse(SseFraming().closing("error", "router_unavailable", "gone").decode())[0]
    assert event.json == {"end": "error", "error": "router_unavailable", "reason": "gone"}


def test_content_types_and_lookup():
    assert framing_for("json").content_type == b"application/json"
    assert framing_for("ndjson").content_type == b"application/x-ndjson"
    assert framing_for("sse").content_type == b"text/event-stream"
