"""Counting a shared percolator index's fields as the engine does, and the room left for new ones (pure).

A shared index holds many targets' queries under one field limit: what a
mapping costs, what a rebuild keeps, and where new fields stop decide
whether a query fits.
"""

from __future__ import annotations

from beater.store.field_limit import limit_of
from beater.store.mappings import PercolatorIndices
from beater.store.properties import mapping_cost
from beater.store.schema import TEXT_WITH_KEYWORD, count_fields, nest, percolator_index_body, prune

P = "estrom-queries-"


def test_fields_are_counted_as_the_engine_counts_them() -> None:
    # Measured on Elasticsearch 7.17: the schema alone is 18 (a percolator field is 6).
    assert count_fields(percolator_index_body()["mappings"]["properties"]) == 18
    props = {
        "message": TEXT_WITH_KEYWORD,  # a field and its multi-field
        "host": {"properties": {"name": {"type": "keyword"}, "ip": {"type": "ip"}}},  # object + 2
        "n": {"type": "long"},
    }
    assert count_fields(props) == 2 + 3 + 1


def test_the_cost_of_mapping_new_fields_counts_the_objects_they_need() -> None:
    have = {"host": {"properties": {"name": {"type": "keyword"}}}}
    assert mapping_cost(have, {}) == 0
    assert mapping_cost(have, {"host.ip": {"type": "ip"}}) == 1
    assert mapping_cost(have, {"a.b.c": TEXT_WITH_KEYWORD}) == 2 + 2  # a, a.b, c and c.keyword
    assert nest({"a.b": {"type": "long"}, "c": {"type": "keyword"}}) == {
        "a": {"properties": {"b": {"type": "long"}}},
        "c": {"type": "keyword"},
    }


def test_prune_keeps_the_named_fields_and_their_enclosing_objects_as_mapped() -> None:
    props = {
        "kind": TEXT_WITH_KEYWORD,
        "gone": {"type": "keyword"},
        "user": {"type": "nested", "properties": {"id": {"type": "long"}, "junk": {"type": "long"}}},
        "msg": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
    }
    assert prune(props, {"kind", "user.id", "msg.raw", "not.mapped"}) == {
        "kind": TEXT_WITH_KEYWORD,
        "user": {"type": "nested", "properties": {"id": {"type": "long"}}},
        "msg": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
    }


def test_limit_of_reads_the_setting_or_the_engine_default() -> None:
    assert limit_of({"settings": {"index.mapping.total_fields.limit": "250"}}) == 250
    assert limit_of({"settings": {}, "defaults": {"index.mapping.total_fields.limit": "1000"}}) == 1000
    assert limit_of({}) == 1000


def indices_with_limit(limit: int) -> PercolatorIndices:
    indices = PercolatorIndices(engine=None, prefix=P)  # type: ignore[arg-type]
    indices._limits[0] = limit
    return indices


def test_new_fields_stop_at_three_quarters_of_the_limit_fields_documents_have_at_the_limit() -> None:
    indices = indices_with_limit(100)
    have = {f"f{i}": {"type": "keyword"} for i in range(74)}
    one = {"x": {"type": "keyword"}}
    two = {"x": {"type": "keyword"}, "y": {"type": "keyword"}}
    assert indices._room(None, 0, have, one, frozenset({"x"})) is None  # 75 of 100
    assert indices._room(None, 0, have, two, frozenset({"x"})) == "new"  # 76: a new field past 75
    assert indices._room(None, 0, have, two, frozenset()) is None  # fields documents have
    full = {f"f{i}": {"type": "keyword"} for i in range(100)}
    assert indices._room(None, 0, full, one, frozenset()) == "full"
    assert indices._room(None, 0, full, {}, frozenset()) is None  # nothing to map
