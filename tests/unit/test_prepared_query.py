"""One registration parses its query string once and canonicalises it once."""

from __future__ import annotations

from typing import Any

import pytest

from common.query import lucene
from common.query.fields import query_fields
from common.query.identity import canonicalize, normalize_query, sid_for, to_dsl
from common.query.limits import QueryLimits
from common.query.prepared import prepare

QUERIES: list[Any] = [
    "level:error AND (host:web1 OR host:web2)",
    "b AND a",
    "timeout",
    "unbalanced (paren",
    {"bool": {"must": [{"query_string": {"query": "svc:x AND y"}}, {"term": {"host": "a"}}]}},
    {"query": {"match": {"message": "disk full"}}},
]


@pytest.mark.parametrize("query", QUERIES)
def test_prepared_query_is_what_the_separate_steps_give(query: Any) -> None:
    prepared = prepare(query, QueryLimits())
    canonical = canonicalize(normalize_query(query))
    assert prepared.canonical == canonical
    assert prepared.sid("events") == sid_for("events", canonical)
    assert prepared.fields == query_fields(to_dsl(canonical))
    assert prepared.dsl == to_dsl(canonical)


@pytest.mark.parametrize("query", QUERIES)
def test_each_query_string_is_parsed_once(query: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = lucene.parser.parse

    def counting(text: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(lucene.parser, "parse", counting)
    prepare(query, QueryLimits())
    assert len(calls) == (0 if "match" in str(query) else 1)
