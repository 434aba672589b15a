"""Backfill search shape and the hand-over de-duplication."""

from __future__ import annotations

from tailor.backfill.handover import Deduper, splice
from tailor.backfill.search import backfill_body, backfill_query, hits_from_search


def test_query_strings_search_every_field_leniently():
    assert backfill_query("level:error") == {
        "query_string": {"query": "level:error", "default_field": "*", "lenient": True}
    }
    dsl = {"match": {"m": "x"}}
    assert backfill_query(dsl) == dsl


def test_newest_first_by_timestamp_then_index_order():
    body = backfill_body("x", 5)
    assert body["size"] == 5
    assert body["sort"] == [
        {"@timestamp": {"order": "desc", "unmapped_type": "date"}},
        {"_index": {"order": "desc"}},
        {"_seq_no": {"order": "desc"}},
    ]


def test_hits_come_back_oldest_first_with_the_concrete_index_they_were_found_in():
    response = {
        "hits": {
            "hits": [
                {"_index": "logs-000002", "_id": "b", "_source": {"n": 2}, "sort": [2]},
                {"_index": "logs-000001", "_id": "a", "_source": {"n": 1}, "sort": [1]},
            ]
        }
    }
    assert hits_from_search("logs", response) == [
        {"_index": "logs-000001", "_source": {"n": 1}, "_id": "a"},
        {"_index": "logs-000002", "_source": {"n": 2}, "_id": "b"},
    ]
    assert hits_from_search("logs", {}) == []


def test_live_hits_with_ids_match_by_id():
    backfill = [
        {"_index": "l", "_source": {"n": 1}, "_id": "a"},
        {"_index": "l", "_source": {"n": 2}, "_id": "b"},
    ]
    live = [
        {"_index": "l", "_source": {"n": 2, "changed": True}, "_id": "b"},
        {"_index": "l", "_source": {"n": 3}, "_id": "c"},
    ]
    assert splice(backfill, live) == [live[1]]


def test_live_hits_without_ids_match_by_source_once_each():
    backfill = [
        {"_index": "l", "_source": {"n": 1}, "_id": "es1"},
        {"_index": "l", "_source": {"n": 1}, "_id": "es2"},
    ]
    live = [{"_index": "l", "_source": {"n": 1}}] * 3 + [{"_index": "l", "_source": {"n": 4}}]
    # Two stored copies cancel two live ones; the third copy is a new document.
    assert splice(backfill, live) == live[2:]


def test_deduper_exhausts():
    d = Deduper([{"_index": "l", "_source": {"k": 1}, "_id": 1}])
    assert not d.exhausted
    assert d.seen({"_index": "l", "_source": {"k": 1}, "_id": 1})
    assert d.exhausted
    assert not d.seen({"_index": "l", "_source": {"k": 1}, "_id": 1})


def test_splice_with_entries():
    backfill = [{"_index": "l", "_source": {"k": 1}}]
    entries = [(5, {"_index": "l", "_source": {"k": 1}}), (6, {"_index": "l", "_source": {"k": 2}})]
    assert splice(backfill, entries, hit_of=lambda e: e[1]) == [entries[1]]
