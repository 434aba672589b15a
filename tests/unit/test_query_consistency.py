"""A query document's description, its matching target and its sid must agree (describe_query)."""

from __future__ import annotations

import pytest

from beater.store.registry import consistent
from common.query.limits import QueryLimits
from common.query.prepared import prepare
from common.query.targets import parse_target

QUERIES = ["level:error", "b:2 AND a:1", {"match": {"msg": "x"}}, {"query": {"term": {"k": "v"}}}, "*"]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("index", ["logs", "b,a", "logs-*,-logs-debug-*"])
def test_a_beaters_document_is_consistent(index: str, query: object) -> None:
    prepared = prepare(query, QueryLimits())
    target = parse_target(index).canonical
    meta = {"index": target, "query": prepared.canonical}
    assert consistent(meta, target)


def test_a_document_whose_target_disagrees_is_not() -> None:
    prepared = prepare("x:1", QueryLimits())
    assert not consistent({"index": "public-x", "query": prepared.canonical}, "payroll")
    assert not consistent({"query": prepared.canonical}, "payroll")
    assert not consistent({"index": "public-x"}, None)
    assert consistent({"index": "b,a"}, "a,b")
