"""Documents fitted to a shared percolator index's mapping (beater/matching/document_shape.py)."""

from __future__ import annotations

from beater.matching.document_shape import conform
from beater.store.schema import value_above

HOST_KEYWORD = {"host": {"type": "keyword"}, "n": {"type": "long"}}
HOST_OBJECT = {"host": {"properties": {"name": {"type": "keyword"}}}}


def test_a_document_that_fits_is_returned_as_it_is() -> None:
    doc = {"host": "web-1", "n": 7, "new": {"x": 1}}
    assert conform(doc, HOST_KEYWORD) is doc


def test_an_object_where_the_mapping_has_a_value_is_dropped() -> None:
    doc = {"host": {"name": "web-1"}, "n": 7}
    assert conform(doc, HOST_KEYWORD) == {"n": 7}
    assert doc == {"host": {"name": "web-1"}, "n": 7}  # the original is left whole


def test_a_value_where_the_mapping_has_an_object_is_dropped() -> None:
    assert conform({"host": "web-1", "m": 1}, HOST_OBJECT) == {"m": 1}
    assert conform({"host": None}, HOST_OBJECT) == {"host": None}  # null fits anything


def test_nested_objects_and_arrays_are_fitted_element_by_element() -> None:
    props = {"a": {"properties": {"host": {"type": "keyword"}, "b": {"type": "long"}}}}
    doc = {"a": [{"host": {"name": "x"}, "b": 1}, {"host": "y"}, "flat"]}
    assert conform(doc, props) == {"a": [{"b": 1}, {"host": "y"}]}
    assert conform({"host": [{"name": "x"}]}, HOST_KEYWORD) == {}
    assert conform({"host": ["a", {"name": "x"}]}, HOST_KEYWORD) == {"host": ["a"]}


def test_nested_type_counts_as_an_object() -> None:
    assert conform({"tags": "x"}, {"tags": {"type": "nested"}}) == {}


def test_value_above_finds_the_enclosing_field_mapped_as_a_value() -> None:
    # Placement (beater/store/mappings.py) keeps a query naming host.name out of an index where
    # host is a keyword: neither the mapping nor an ECS document could go there.
    assert value_above(HOST_KEYWORD, "host.name") == "host"
    assert value_above(HOST_KEYWORD, "host.os.name") == "host"
    assert value_above(HOST_OBJECT, "host.name") is None
    assert value_above(HOST_OBJECT, "host.os.name") is None
    assert value_above(HOST_KEYWORD, "host") is None  # the field itself: a type question, not a shape one
    assert value_above({}, "host.name") is None


def test_a_multi_field_is_not_a_shape_conflict() -> None:
    props = {"message": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}}
    assert value_above(props, "message.keyword") is None
    assert value_above(props, "message.raw") == "message"
