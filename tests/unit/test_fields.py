"""Which fields a query names, so they can be mapped before it is stored."""

from __future__ import annotations

import pytest

from common.query.fields import dsl_fields, lucene_fields, query_fields


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("level:error AND service:api", {"level", "service"}),
        ("http.status:[500 TO 599]", {"http.status"}),
        ("@timestamp:>2020-01-01", {"@timestamp"}),
        ('message:"a: b" AND x:1', {"message", "x"}),
        ("timeout", set()),
        ("a\\:b:c", {"a:b"}),
        ("_exists_:trace.id", {"trace.id"}),
        ("mess*:foo", set()),
        ("path:/a:b/ AND k:v", {"path", "k"}),
        ("(a:1 OR b:2) AND NOT c:3", {"a", "b", "c"}),
        ("user-name:x", {"user-name"}),
    ],
)
def test_lucene_fields(query: str, fields: set[str]) -> None:
    assert lucene_fields(query) == fields


def test_dsl_fields_walk_compound_queries() -> None:
    dsl = {
        "bool": {
            "must": [{"match": {"message": {"query": "x", "boost": 2}}}, {"term": {"level.keyword": "e"}}],
            "filter": {"range": {"status": {"gte": 500}}},
            "should": [
                {"exists": {"field": "trace"}},
                {"multi_match": {"query": "q", "fields": ["title^3", "body", "meta.*"]}},
                {"query_string": {"query": "a:b", "default_field": "txt"}},
                {"nested": {"path": "p", "query": {"terms": {"p.tag": ["x"], "boost": 1}}}},
            ],
        }
    }
    assert dsl_fields(dsl) == {
        "message",
        "level.keyword",
        "status",
        "trace",
        "title",
        "body",
        "txt",
        "a",
        "p.tag",
    }


def test_query_fields_folds_keyword_subfields_and_skips_metadata() -> None:
    assert query_fields({"bool": {"must": [{"term": {"level.keyword": "e"}}, {"term": {"_id": "x"}}]}}) == {
        "level"
    }
