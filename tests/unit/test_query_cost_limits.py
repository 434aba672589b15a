"""Fields per query, regexes, wildcards and expansions: the checks and the caps written into stored queries (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from common.config import ConfigError, Settings
from common.query.identity import InvalidQuery, LimitExceeded
from common.query.limits import QueryLimits, capped_dsl, validate_query
from common.query.prepared import prepare

DEFAULT = QueryLimits()
STRICT = QueryLimits(
    max_fields=3, max_regex_length=10, max_determinized_states=500, max_expansions=5, leading_wildcards=False
)


def refused(query: Any, limits: QueryLimits = DEFAULT) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as err:
        validate_query(query, limits)
    # the beater's registration refuses the same way
    with pytest.raises(LimitExceeded):
        prepare(query, limits)
    return err.value


@pytest.mark.parametrize(
    "query",
    [
        "a:1 b:2 c:3 d:4",
        {"bool": {"should": [{"term": {f"f{i}": "x"}} for i in range(4)]}},
        {"query_string": {"query": "a:1", "fields": ["b", "c", "d"]}},
        {"multi_match": {"query": "x", "fields": ["a", "b^2", "c", "d"]}},
    ],
)
def test_more_fields_than_a_query_may_name_is_refused_naming_the_setting(query: Any) -> None:
    err = refused(query, STRICT)
    assert err.limit == "ESTROM_QUERY_MAX_FIELDS"
    assert "names 4 fields" in str(err)
    assert "over the limit of 3 (ESTROM_QUERY_MAX_FIELDS)" in str(err)


def test_fields_count_as_they_are_mapped() -> None:
    # ``a.keyword`` is ``a``; wildcard field names map nothing; a field named twice is one.
    for query in (
        "a:1 a.keyword:2 b:3 c:4 a:5",
        {"query_string": {"query": "x", "fields": ["m*", "a", "b", "c"]}},
    ):
        validate_query(query, STRICT)
    assert prepare("a:1 a.keyword:2 b:3", STRICT).fields == frozenset({"a", "b"})


def test_the_default_allows_a_hundred_fields() -> None:
    validate_query(" OR ".join(f"f{i}:x" for i in range(100)), DEFAULT)
    assert refused(" OR ".join(f"f{i}:x" for i in range(101))).limit == "ESTROM_QUERY_MAX_FIELDS"


@pytest.mark.parametrize(
    ("query", "limit"),
    [
        ("msg:/abcdefghijk/", "ESTROM_QUERY_MAX_REGEX_LENGTH"),
        ({"regexp": {"m": "abcdefghijk"}}, "ESTROM_QUERY_MAX_REGEX_LENGTH"),
        (
            {"regexp": {"m": {"value": "a.*", "max_determinized_states": 501}}},
            "ESTROM_QUERY_MAX_DETERMINIZED_STATES",
        ),
        (
            {"query_string": {"query": "a", "max_determinized_states": 100000}},
            "ESTROM_QUERY_MAX_DETERMINIZED_STATES",
        ),
        ({"fuzzy": {"m": {"value": "abc", "max_expansions": 6}}}, "ESTROM_QUERY_MAX_EXPANSIONS"),
        (
            {"match": {"m": {"query": "abc", "fuzziness": 2, "max_expansions": 1000}}},
            "ESTROM_QUERY_MAX_EXPANSIONS",
        ),
        (
            {"match_phrase_prefix": {"m": {"query": "ab", "max_expansions": 99}}},
            "ESTROM_QUERY_MAX_EXPANSIONS",
        ),
        (
            {"multi_match": {"query": "x", "fields": ["a"], "max_expansions": 99}},
            "ESTROM_QUERY_MAX_EXPANSIONS",
        ),
        ({"query_string": {"query": "ab~", "fuzzy_max_expansions": 99}}, "ESTROM_QUERY_MAX_EXPANSIONS"),
        (
            {"simple_query_string": {"query": "ab~", "fuzzy_max_expansions": 99}},
            "ESTROM_QUERY_MAX_EXPANSIONS",
        ),
        ("*rror", "ESTROM_QUERY_LEADING_WILDCARDS"),
        ("level:error AND msg:?rror", "ESTROM_QUERY_LEADING_WILDCARDS"),
        ({"wildcard": {"m": "*rror"}}, "ESTROM_QUERY_LEADING_WILDCARDS"),
        ({"wildcard": {"m": {"value": "?x"}}}, "ESTROM_QUERY_LEADING_WILDCARDS"),
        ({"bool": {"filter": [{"query_string": {"query": "a AND *b"}}]}}, "ESTROM_QUERY_LEADING_WILDCARDS"),
        # luqum cannot parse these: the scan of the text still finds them
        ("a AND ( *bc", "ESTROM_QUERY_LEADING_WILDCARDS"),
        ("f:* AND ( *bc", "ESTROM_QUERY_LEADING_WILDCARDS"),
        ("a AND ( /abcdefghijk/", "ESTROM_QUERY_MAX_REGEX_LENGTH"),
        # inside a span_multi, as anywhere a query may stand
        ({"span_multi": {"match": {"regexp": {"m": "abcdefghijk"}}}}, "ESTROM_QUERY_MAX_REGEX_LENGTH"),
    ],
)
def test_expensive_queries_are_refused_naming_the_setting(query: Any, limit: str) -> None:
    err = refused(query, STRICT)
    assert err.limit == limit
    assert f"({limit}" in str(err)


@pytest.mark.parametrize(
    "query",
    [
        "msg:/abc.*/ AND x~2",
        "f:* AND [* TO 5] AND ab*",  # a lone * (exists, open range) and a trailing one
        {"wildcard": {"m": "ab*"}},
        {"regexp": {"m": {"value": "a.*", "max_determinized_states": 500}}},
        {"fuzzy": {"m": {"value": "abc", "max_expansions": 5}}},
        {"match": {"m": {"query": "ab", "max_expansions": 5}}},
        r"\*literal",
    ],
)
def test_queries_within_the_cost_limits_pass(query: Any) -> None:
    validate_query(query, STRICT)


def test_leading_wildcards_are_allowed_by_default() -> None:
    validate_query("message:/err.*/ AND *rror", DEFAULT)
    validate_query({"wildcard": {"m": "*rror"}}, DEFAULT)


def test_the_stored_query_carries_the_caps_the_canonical_one_does_not() -> None:
    prepared = prepare("x~ AND msg:/ab.*/", STRICT)
    assert prepared.dsl == {"query_string": {"query": "msg:/ab.*/ AND x~"}}
    assert prepared.stored == {
        "query_string": {
            "query": "msg:/ab.*/ AND x~",
            "fuzzy_max_expansions": 5,
            "max_determinized_states": 500,
            "allow_leading_wildcard": False,
        }
    }
    # the sid is the canonical query's: the caps do not change it
    assert prepared.sid("logs") == prepare("x~ AND msg:/ab.*/", DEFAULT).sid("logs")


def test_caps_reach_every_node_of_a_compound_query_and_keep_smaller_values() -> None:
    dsl = {
        "bool": {
            "must": [
                {"regexp": {"m": "a.*"}},
                {"fuzzy": {"f": {"value": "abc", "max_expansions": 2}}},
                {"nested": {"path": "p", "query": {"match": {"p.x": {"query": "y", "fuzziness": 1}}}}},
                {"match": {"plain": "no expansion"}},
            ],
            "should": {"match_phrase_prefix": {"t": "qu"}},
        }
    }
    assert capped_dsl(dsl, STRICT) == {
        "bool": {
            "must": [
                {"regexp": {"m": {"value": "a.*", "max_determinized_states": 500}}},
                {"fuzzy": {"f": {"value": "abc", "max_expansions": 2}}},
                {
                    "nested": {
                        "path": "p",
                        "query": {"match": {"p.x": {"query": "y", "fuzziness": 1, "max_expansions": 5}}},
                    }
                },
                {"match": {"plain": "no expansion"}},
            ],
            "should": {"match_phrase_prefix": {"t": {"query": "qu", "max_expansions": 5}}},
        }
    }
    assert dsl["bool"]["must"][0] == {"regexp": {"m": "a.*"}}  # the input is left as it was


def test_every_limit_refusal_is_an_invalid_query() -> None:
    assert issubclass(LimitExceeded, InvalidQuery)
    err = refused("x" * (DEFAULT.max_bytes + 1))
    assert err.limit == "ESTROM_QUERY_MAX_BYTES"


def test_the_settings_reach_the_limits() -> None:
    env = {
        "ESTROM_QUERY_MAX_FIELDS": "7",
        "ESTROM_QUERY_MAX_REGEX_LENGTH": "64",
        "ESTROM_QUERY_MAX_DETERMINIZED_STATES": "999",
        "ESTROM_QUERY_MAX_EXPANSIONS": "9",
        "ESTROM_QUERY_LEADING_WILDCARDS": "0",
        "ESTROM_FIELDS_PER_TARGET": "11",
        "ESTROM_FIELDS_PER_PRINCIPAL": "0",
    }
    limits = Settings.from_env(env).query_limits()
    assert limits == QueryLimits(
        max_fields=7,
        max_regex_length=64,
        max_determinized_states=999,
        max_expansions=9,
        leading_wildcards=False,
        fields_per_target=11,
        fields_per_principal=0,
    )
    assert Settings.from_env({}).query_limits() == QueryLimits()
    assert Settings.from_env({"ESTROM_QUERY_LEADING_WILDCARDS": "true"}).query_leading_wildcards
    for bad in ({"ESTROM_QUERY_LEADING_WILDCARDS": "maybe"}, {"ESTROM_QUERY_MAX_FIELDS": "0"}):
        with pytest.raises(ConfigError):
            Settings.from_env(bad)
