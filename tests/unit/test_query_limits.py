"""Query limits at registration: size, depth, clauses, and the DSL allowlist (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.json_shape import inspect
from common.query.identity import InvalidQuery
from common.query.limits import ALLOWED_TYPES, QueryLimits, check_query, validate_query

SMALL = QueryLimits(max_bytes=200, max_depth=6, max_clauses=4)
DEFAULT = QueryLimits()


def refused(query: Any, limits: QueryLimits = DEFAULT) -> str:
    with pytest.raises(InvalidQuery) as err:
        validate_query(query, limits)
    return str(err.value)


@pytest.mark.parametrize(
    "query",
    [
        "level:error",
        "message:/err.*/ AND *rror",  # regexes and leading wildcards are allowed
        {"match": {"message": "error"}},
        {"query": {"bool": {"must": [{"term": {"a": 1}}], "should": {"exists": {"field": "b"}}}}},
        {"terms": {"host": ["a", "b"], "boost": 1.0}},
        {"terms_set": {"f": {"terms": ["a"], "minimum_should_match_field": "n"}}},
        {"geo_shape": {"loc": {"shape": {"type": "point", "coordinates": [1, 2]}}}},
        {"nested": {"path": "p", "query": {"match": {"p.x": "y"}}}},
        {
            "span_near": {
                "clauses": [{"span_term": {"f": "a"}}, {"span_multi": {"match": {"prefix": {"f": "b"}}}}]
            }
        },
        {"query_string": {"query": "a AND b"}},
    ],
)
def test_ordinary_queries_pass(query: Any) -> None:
    validate_query(query, QueryLimits())


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"script": {"script": "true"}}, "'script' is not allowed"),
        ({"script_score": {"query": {"match_all": {}}, "script": {"source": "1"}}}, "'script_score'"),
        ({"function_score": {"query": {"match_all": {}}}}, "'function_score'"),
        ({"wrapper": {"query": "eyJtYXRjaF9hbGwiOnt9fQ=="}}, "'wrapper'"),
        ({"percolate": {"field": "q", "document": {}}}, "'percolate'"),
        ({"has_child": {"type": "c", "query": {"match_all": {}}}}, "'has_child'"),
        ({"has_parent": {"parent_type": "p", "query": {"match_all": {}}}}, "'has_parent'"),
        ({"parent_id": {"type": "c", "id": "1"}}, "'parent_id'"),
        ({"more_like_this": {"like": [{"_index": "x", "_id": "1"}]}}, "'more_like_this'"),
        ({"distance_feature": {"field": "t", "origin": "now", "pivot": "1d"}}, "'distance_feature'"),
        ({"rank_feature": {"field": "r"}}, "'rank_feature'"),
        ({"terms": {"user": {"index": "users", "id": "2", "path": "followers"}}}, "terms lookup"),
        ({"geo_shape": {"loc": {"indexed_shape": {"index": "shapes", "id": "1"}}}}, "indexed_shape"),
        ({"terms_set": {"f": {"terms": ["a"], "minimum_should_match_script": {"source": "1"}}}}, "script"),
        ({"intervals": {"f": {"match": {"query": "a", "filter": {"script": {"source": "1"}}}}}}, "script"),
        ({"nested": {"path": "p", "query": {"match_all": {}}, "inner_hits": {}}}, "'inner_hits'"),
        # Forbidden types hide anywhere a sub-query may stand.
        ({"bool": {"filter": [{"term": {"a": 1}}, {"wrapper": {"query": "e30="}}]}}, "'wrapper'"),
        ({"constant_score": {"filter": {"script": {"script": "1"}}}}, "'script'"),
        ({"dis_max": {"queries": [{"match_all": {}}, {"has_child": {}}]}}, "'has_child'"),
        ({"boosting": {"positive": {"match_all": {}}, "negative": {"percolate": {}}}}, "'percolate'"),
        ({"bool": {"must": [{"a": 1, "b": 2}]}}, "exactly one query type"),
        ({"bool": {"must": ["text"]}}, "exactly one query type"),
    ],
)
def test_forbidden_constructs_are_invalid_queries(query: Any, words: str) -> None:
    assert words in refused(query)


def test_a_field_named_script_is_just_a_field() -> None:
    validate_query({"match": {"script": "x"}}, QueryLimits())
    validate_query("script:x", QueryLimits())


def test_size_limit_names_the_variable() -> None:
    assert "ESTROM_QUERY_MAX_BYTES" in refused("a" * 201, SMALL)
    assert "ESTROM_QUERY_MAX_BYTES" in refused({"match": {"f": "é" * 100}}, SMALL)  # bytes, not characters
    validate_query("a" * 200, SMALL)


def nested_bool(levels: int) -> dict[str, Any]:
    query: dict[str, Any] = {"term": {"a": 1}}
    for _ in range(levels):
        query = {"bool": {"must": query}}
    return query


def test_depth_limit_for_dsl_and_query_strings() -> None:
    assert "ESTROM_QUERY_MAX_DEPTH" in refused(nested_bool(3), SMALL)
    validate_query(nested_bool(1), SMALL)
    assert "ESTROM_QUERY_MAX_DEPTH" in refused("NOT " * 10 + "a", SMALL)
    assert "ESTROM_QUERY_MAX_DEPTH" in refused("(" * 10 + "a" + ")" * 10, SMALL)
    # Far past Python's recursion limit: refused, not a RecursionError.
    assert "ESTROM_QUERY_MAX_DEPTH" in refused("NOT " * 5000 + "a")
    assert "ESTROM_QUERY_MAX_DEPTH" in refused(nested_bool(5000))


def test_clause_limit_for_dsl_and_query_strings() -> None:
    assert "ESTROM_QUERY_MAX_CLAUSES" in refused("a b c d e", SMALL)
    validate_query("a b c d", SMALL)
    five = {"bool": {"should": [{"term": {"a": i}} for i in range(4)]}}
    assert "ESTROM_QUERY_MAX_CLAUSES" in refused(five, SMALL)
    inner = {"query_string": {"query": "a b c d"}}
    assert "ESTROM_QUERY_MAX_CLAUSES" in refused(inner, SMALL)  # its terms count too


def test_unparsable_query_strings_are_left_to_the_engine() -> None:
    check_query("level:(error", QueryLimits())


def test_strings_that_are_not_unicode_are_refused() -> None:
    assert "surrogate" in refused("a\ud800")
    assert "surrogate" in refused({"match": {"f\udfff": "x"}})


def test_non_finite_numbers_are_refused() -> None:
    assert "out of range" in refused({"range": {"n": {"gte": float("inf")}}})


def test_every_allowed_type_is_a_real_elasticsearch_query_type() -> None:
    assert "script" not in ALLOWED_TYPES
    assert {"bool", "match", "query_string", "term", "terms"} <= ALLOWED_TYPES


def nesting_depth(value: object, stop_above: int) -> int:
    return inspect(value, stop_above)[0]


def value_problem(value: object) -> str | None:
    return inspect(value, 10**6)[1]


def test_nesting_depth_and_value_problem() -> None:
    assert nesting_depth(1, 5) == 0
    assert nesting_depth({"a": [1, {"b": {}}]}, 10) == 4
    deep = json.loads("[" * 500 + "]" * 500)
    assert nesting_depth(deep, 10) == 11  # stops counting past the limit
    assert value_problem({"a": [1, "x", {"b": None}]}) is None
    assert value_problem([float("nan")]) is not None
    assert nesting_depth({"a": [], "b": 1}, 10) == 2
    assert value_problem({"naïve": ["café", "日本"]}) is None
    assert "surrogate" in (value_problem({"k": ["ok", "x\ud800"]}) or "")
    assert "surrogate" in (value_problem({"\udc00": 1}) or "")
    assert "out of range" in (value_problem({"a": {"b": [1e308 * 10]}}) or "")
    assert inspect({"a": "x\ud800", "b": [[[1]]]}, 2) == (3, value_problem({"a": "x\ud800"}))
