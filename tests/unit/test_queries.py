"""Query identity: shapes, canonical form and sids."""

from __future__ import annotations

import pytest

from common.query.identity import (
    InvalidQuery,
    canonical_form,
    normalize_query,
    parse_query_param,
    sid_for,
    to_dsl,
)


def test_query_string_becomes_query_string_query() -> None:
    assert to_dsl(normalize_query("a:b")) == {"query_string": {"query": "a:b"}}


def test_query_wrapper_is_unwrapped() -> None:
    assert normalize_query({"query": {"match": {"a": "b"}}}) == {"match": {"a": "b"}}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "must not be empty"),
        ({}, "must not be an empty object"),
        ({"match": {}, "term": {}}, "exactly one query type"),
        ({"query": "a:b"}, "must hold a query DSL object"),
        ({"match": "a"}, "must hold an object"),
        (3, "string or a JSON object"),
        (None, "string or a JSON object"),
    ],
)
def test_invalid_shapes(query: object, reason: str) -> None:
    with pytest.raises(InvalidQuery) as err:
        normalize_query(query)
    assert reason in str(err.value)


def test_sid_is_16_lowercase_hex_and_stable() -> None:
    sid = sid_for("events", "level:error")
    assert len(sid) == 16
    assert sid == sid.lower()
    int(sid, 16)
    # Pinned: a change of the canonical form or hash changes every subscription.
    assert sid == sid_for("events", "level:error")
    assert sid != sid_for("events2", "level:error")


def test_whitespace_outside_phrases_does_not_matter() -> None:
    assert sid_for("i", "  a:b   AND\tc:d ") == sid_for("i", "a:b AND c:d")


def test_whitespace_inside_phrases_matters() -> None:
    assert sid_for("i", 'msg:"a  b"') != sid_for("i", 'msg:"a b"')
    assert canonical_form('x:"a  b"   y') == '["lucene","x:\\"a  b\\" y"]'


def test_escaped_quote_does_not_open_a_phrase() -> None:
    assert canonical_form('a\\"  b') == canonical_form('a\\" b')


def test_dsl_key_order_and_bool_clause_order_do_not_matter() -> None:
    one = {"bool": {"must": [{"match": {"a": "x"}}, {"term": {"b": "y"}}], "minimum_should_match": 1}}
    two = {"bool": {"minimum_should_match": 1, "must": [{"term": {"b": "y"}}, {"match": {"a": "x"}}]}}
    assert sid_for("i", one) == sid_for("i", two)


def test_single_clause_equals_one_element_list() -> None:
    assert sid_for("i", {"bool": {"filter": {"term": {"a": 1}}}}) == sid_for(
        "i", {"bool": {"filter": [{"term": {"a": 1}}]}}
    )


def test_terms_values_order_does_not_matter() -> None:
    assert sid_for("i", {"terms": {"a": [3, 1, 2]}}) == sid_for("i", {"terms": {"a": [1, 2, 3]}})


def test_order_that_matters_is_kept() -> None:
    # Non-bool lists (e.g. a span_near's clauses) are ordered.
    near_ab = {"span_near": {"clauses": [{"span_term": {"f": "a"}}, {"span_term": {"f": "b"}}], "slop": 0}}
    near_ba = {"span_near": {"clauses": [{"span_term": {"f": "b"}}, {"span_term": {"f": "a"}}], "slop": 0}}
    assert sid_for("i", near_ab) != sid_for("i", near_ba)


def test_query_string_and_dsl_never_collide() -> None:
    assert canonical_form("x") != canonical_form({"query_string": {"query": "x"}})


def test_parse_query_param() -> None:
    assert parse_query_param('{"match": {"a": "b"}}') == {"match": {"a": "b"}}
    assert parse_query_param("a:b") == "a:b"
    assert parse_query_param("[1]") == "[1]"
    with pytest.raises(InvalidQuery):
        parse_query_param("{broken")
