"""``fields=``: each hit's ``_source`` holds only the fields asked for, in backfill and live, on every format.

Documents of several shapes (nested objects, arrays of objects and of
scalars, a flat dotted key, missing fields) are stored, then tailed with
``n=`` (one search, and paged past ``ONE_SEARCH``), and sent live; each hit
must be the document cut by ``compile_fields`` (which the engine agrees with:
tests/integration/test_source_projection_engine.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tailor.backfill.pages import ONE_SEARCH
from tailor.views.fields import compile_fields
from tests.tailor.helpers import send, send_as_a_sender_would
from tests.tailor.tail_client import Tail
from tests.tailor.test_tail_backfill import bulk

pytestmark = pytest.mark.integration

FORMATS = ["json", "ndjson", "sse"]
FIELDS = ("n", "host.name", "user.name", "http.*", "tags", "@time*")


def shaped(n: int) -> dict[str, Any]:
    """The n-th document: one of three shapes, each missing some of the fields."""
    shapes: list[dict[str, Any]] = [
        {
            "host": {"name": f"h{n}", "ip": ["10.0.0.1", "10.0.0.2"]},
            "user": [{"name": "u1", "id": 1}, {"name": "u2"}],
            "tags": ["a", "b"],
            "http.status": 200,
            "msg": "flat dotted key, arrays of objects and of scalars",
        },
        {"host": {"name": f"h{n}"}, "msg": "no user, no tags, no http"},
        {"http": {"status": 500, "method": "GET"}, "user": {"name": "u3"}, "tags": [], "msg": "nested http"},
    ]
    return {"@timestamp": f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}Z", "kind": "fx", "n": n, **shapes[n % 3]}


def cut(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    project = compile_fields(FIELDS)
    return [project(doc) for doc in docs]


def tail(tailor_url: str, index: str, fmt: str, **params: Any) -> Tail:
    t = Tail(tailor_url, {"i": index, "q": "kind:fx", "fields": ",".join(FIELDS), "format": fmt, **params})
    assert t.status == 200, getattr(t, "body", b"")
    return t


def test_the_cut_keeps_what_the_patterns_reach() -> None:
    """What the other tests expect, spelled out for the three shapes."""
    assert cut([shaped(0), shaped(1), shaped(2)]) == [
        {
            "@timestamp": "2024-01-01T00:00:00Z",
            "n": 0,
            "host": {"name": "h0"},
            "user": [{"name": "u1"}, {"name": "u2"}],
            "tags": ["a", "b"],
            "http.status": 200,
        },
        {"@timestamp": "2024-01-01T00:00:01Z", "n": 1, "host": {"name": "h1"}},
        {
            "@timestamp": "2024-01-01T00:00:02Z",
            "n": 2,
            "http": {"status": 500, "method": "GET"},
            "user": {"name": "u3"},
            "tags": [],
        },
    ]


@pytest.mark.parametrize("size", [3, ONE_SEARCH + 5], ids=["one-search", "paged"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_backfilled_hits_hold_only_the_fields(tailor, engine, index, fmt, size):
    stored = [shaped(n) | {"_id": f"d{n}"} for n in range(size + 2)]
    bulk(engine.url, index, stored)
    t = tail(tailor.url, index, fmt, n=size, limit=size)
    try:
        t.wait_end()
        hits = list(t.hits)
    finally:
        t.close()
    newest = [{k: v for k, v in d.items() if k != "_id"} for d in stored[-size:]]
    assert [h["_source"] for h in hits] == cut(newest)
    assert [(h["_index"], h["_id"]) for h in hits] == [(index, f"d{n}") for n in range(2, size + 2)]


def test_patterns_that_reach_nothing_leave_empty_sources(tailor, engine, index):
    """Every backfilled hit is still sent, with ``{}``: on every engine, an emoji in a pattern
    matches nothing (OpenSearch 3 alone would match it here, so it is not asked)."""
    bulk(engine.url, index, [shaped(n) | {"😀": 1} for n in range(3)])
    t = Tail(tailor.url, {"i": index, "q": "kind:fx", "fields": "😀,absent.*", "n": 3, "limit": 3})
    try:
        assert t.status == 200
        assert [h["_source"] for h in t.document()["hits"]] == [{}, {}, {}]
    finally:
        t.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_live_hits_after_the_backfill_hold_only_the_fields(tailor, beater, engine, index, fmt):
    bulk(engine.url, index, [shaped(n) for n in range(3)])
    t = tail(tailor.url, index, fmt, n=2, limit=5)
    try:
        assert [h["_source"] for h in t.wait_hits(2)] == cut([shaped(1), shaped(2)])
        send(beater.url, index, [shaped(n) for n in range(3, 6)])
        t.wait_end()
        hits = list(t.hits)
    finally:
        t.close()
    assert [h["_source"] for h in hits] == cut([shaped(n) for n in range(1, 6)])


@pytest.mark.parametrize("with_ids", [True, False], ids=["by-id", "by-source"])
def test_hand_over_recognises_cut_documents(tailor, beater, engine, index, with_ids):
    """Documents stored, then published, while the tail starts: each arrives once, cut."""
    docs = [shaped(n) | ({"_id": f"d{n}"} if with_ids else {}) for n in range(12)]
    bulk(engine.url, index, docs[:8])
    t = tail(tailor.url, index, "ndjson", n=8)
    try:
        assert len(t.wait_hits(8)) == 8
        for doc in docs[6:8]:  # stored, found by the backfill, published only now
            send_as_a_sender_would(beater.url, index, [doc])
        for doc in docs[8:]:  # stored, then published, as a sender would
            bulk(engine.url, index, [doc])
            send_as_a_sender_would(beater.url, index, [doc])
        t.wait(lambda s: any(h["_source"].get("n") == 11 for h in s.hits), what="last document")
        hits = list(t.hits)
    finally:
        t.close()
    assert [h["_source"] for h in hits] == cut([{k: v for k, v in d.items() if k != "_id"} for d in docs])


def test_new_documents_that_cut_alike_survive_the_hand_over(tailor, beater, engine, index):
    stored = [{"@timestamp": f"2024-01-01T00:00:0{k}Z", "level": "error", "k": k} for k in range(3)]
    bulk(engine.url, index, stored)
    params = {"i": index, "q": "level:(error OR done)", "fields": "level", "n": 3, "format": "ndjson"}
    t = Tail(tailor.url, params)
    try:
        assert len(t.wait_hits(3)) == 3
        send(beater.url, index, [{"level": "error", "k": 10 + k} for k in range(3)])
        send(beater.url, index, [{"level": "done"}])  # cuts unlike any other: the last to arrive
        t.wait(lambda s: any(h["_source"] == {"level": "done"} for h in s.hits), what="the last hit")
        hits = list(t.hits)
    finally:
        t.close()
    assert [h["_source"] for h in hits] == [{"level": "error"}] * 6 + [{"level": "done"}]
