"""``fields=``: a hit's ``_source`` cut down as the engine's ``_source`` includes cut it.

The expected shapes are the engine's own answers (Elasticsearch 7.17 and
OpenSearch, tests/integration/test_source_projection_engine.py checks the
two agree on many more); here they pin each rule, and the backfill's
searches are checked to ask the engine for the same.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailor.backfill.budget import BackfillBudget
from tailor.backfill.handover import CutHit, source_digest
from tailor.backfill.pages import Backfill
from tailor.backfill.search import search_ids, search_page, search_with_sources
from tailor.views import fields as fields_module
from tailor.views.fields import compile_fields
from tests.unit.test_tailor_paged_backfill import PagedEngine, docs, run

NESTED = {"a": {"b": 1, "c": {"d": 2}}, "ab": 3, "x": 4}
EMPTY = {"a": {}, "b": {"c": {}}}
FLAT = {"a.b": 1, "a": {"c": 2}}
ARRAYS = {"a": [1, 2, {"b": 3, "c": 4}, [5, {"b": 6}], {"c": 7}], "s": [1, 2, 3]}
NULLS = {"a": None, "b": {"c": None}, "e": []}
UNICODE = {"😀": 1, "k😀": 2, "é": 3}
DOTTED_INSIDE = {"a": {"b.c": 1, "b": {"c": 2}}}
DEEP_ARRAYS = {"a": [[{"b": 1}], []], "c": [{}], "d": [{"e": {}}]}
BLANK_KEYS = {"": {"a": 1}, "x": {"": 2}}


@pytest.mark.parametrize(
    ("patterns", "source", "expected"),
    [
        # a name selects the whole field, objects with all they hold, even empty ones
        (("a",), NESTED, {"a": {"b": 1, "c": {"d": 2}}}),
        (("a",), EMPTY, {"a": {}}),
        (("a",), NULLS, {"a": None}),
        (("a",), ARRAYS, {"a": ARRAYS["a"]}),
        (("s",), ARRAYS, {"s": [1, 2, 3]}),
        (("e",), NULLS, {"e": []}),
        (("c",), DEEP_ARRAYS, {"c": [{}]}),
        (("d.e",), DEEP_ARRAYS, {"d": [{"e": {}}]}),
        (("b.c",), EMPTY, {"b": {"c": {}}}),
        (("b.c",), NULLS, {"b": {"c": None}}),
        # a dotted path reaches inside; objects left empty on the way are dropped
        (("a.b",), NESTED, {"a": {"b": 1}}),
        (("a.b",), EMPTY, {}),
        (("a.b",), NULLS, {}),
        (("a.b.c",), NESTED, {}),
        (("a.c", "x"), NESTED, {"a": {"c": {"d": 2}}, "x": 4}),
        (("x.a",), NESTED, {}),
        # inside arrays: each object filtered, scalars beside them and emptied objects dropped
        (("a.b",), ARRAYS, {"a": [{"b": 3}, [{"b": 6}]]}),
        (("a.c",), ARRAYS, {"a": [{"c": 4}, {"c": 7}]}),
        (("a.*",), ARRAYS, {"a": [{"b": 3, "c": 4}, [{"b": 6}], {"c": 7}]}),
        (("a.b",), DEEP_ARRAYS, {"a": [[{"b": 1}]]}),
        # `*` is any run, dots included
        (("a*",), NESTED, {"a": {"b": 1, "c": {"d": 2}}, "ab": 3}),
        (("a*",), EMPTY, {"a": {}}),
        (("a.*",), NESTED, {"a": {"b": 1, "c": {"d": 2}}}),
        (("a.*",), EMPTY, {}),
        (("*.b",), NESTED, {"a": {"b": 1}}),
        (("*b",), NESTED, {"a": {"b": 1}, "ab": 3}),
        (("*b",), EMPTY, {"b": {"c": {}}}),
        (("a.b*",), NESTED, {"a": {"b": 1}}),
        (("*",), NESTED, NESTED),
        (("*",), BLANK_KEYS, BLANK_KEYS),
        (("**",), NESTED, NESTED),
        # flat keys with dots are paths like nested ones
        (("a",), FLAT, FLAT),
        (("a.b",), FLAT, {"a.b": 1}),
        (("*.b",), FLAT, {"a.b": 1}),
        (("a.c", "x"), FLAT, {"a": {"c": 2}}),
        (("a.b",), DOTTED_INSIDE, DOTTED_INSIDE),
        (("a.b.c",), DOTTED_INSIDE, DOTTED_INSIDE),
        (("a.c", "x"), BLANK_KEYS, {"x": {"": 2}}),
        # names are exact: case, and whole keys
        (("A",), NESTED, {}),
        (("é",), UNICODE, {"é": 3}),
        (("k*",), UNICODE, {"k😀": 2}),
        (("*",), UNICODE, UNICODE),
        # the engine matches UTF-16 units against code points: a pattern with an emoji matches nothing
        (("😀",), UNICODE, {}),
        (("*😀",), UNICODE, {}),
        (("😀", "é"), UNICODE, {"é": 3}),
        # overlapping patterns: the widest wins
        (("a", "a.b"), NESTED, {"a": {"b": 1, "c": {"d": 2}}}),
        (("a.b", "a.c.d"), NESTED, {"a": {"b": 1, "c": {"d": 2}}}),
    ],
)
def test_the_engines_shapes(
    patterns: tuple[str, ...], source: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert compile_fields(patterns)(source) == expected


def test_no_patterns_is_the_whole_source_as_the_engines_empty_includes() -> None:
    source = {"a": {"b": 1}}
    out = compile_fields(())(source)
    assert out == source
    assert out is not source


def test_the_input_is_left_alone_and_the_result_is_a_new_dict() -> None:
    for patterns in [("a",), ("a.b",), ("a.*",), ("*",), ("nothing",)]:
        source = copy.deepcopy(ARRAYS)
        out = compile_fields(patterns)(source)
        assert source == ARRAYS
        assert out is not source
        out.clear()
        assert source == ARRAYS


def test_one_compiled_set_serves_sources_of_any_shape_in_turn() -> None:
    project = compile_fields(("a.b", "x", "*.c"))
    shapes = [NESTED, EMPTY, FLAT, ARRAYS, NULLS, DOTTED_INSIDE, DEEP_ARRAYS, BLANK_KEYS]
    first = [project(s) for s in shapes]
    assert [project(s) for s in reversed(shapes)] == list(reversed(first))
    assert [compile_fields(("a.b", "x", "*.c"))(s) for s in shapes] == first


def test_the_matcher_starts_over_when_its_memo_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fields_module, "_MEMO_LIMIT", 3)
    project = compile_fields(("k*.v", "a"))
    for i in range(50):
        source = {f"k{i}": {"v": i, "w": 0}, "a": i, f"z{i}": 1}
        assert project(source) == {f"k{i}": {"v": i}, "a": i}


def test_long_keys_are_matched_without_being_remembered() -> None:
    long_key = "a" * 1000
    project = compile_fields(("a*.b", "x"))
    for _ in range(2):
        assert project({long_key: {"b": 1, "c": 2}, "x": 3}) == {long_key: {"b": 1}, "x": 3}


# -- properties, over small alphabets so that patterns meet keys ----------------------

_KEYS = st.sampled_from(["a", "b", "ab", "a.b", "b.a", "", "c"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["s", "t"]))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=12,
)
_SOURCES = st.dictionaries(_KEYS, _VALUES, max_size=4)
_PATTERNS = st.lists(
    st.lists(st.sampled_from(["a", "b", "c", "*", "a*", "*b", "*a*"]), min_size=1, max_size=3).map(".".join),
    min_size=1,
    max_size=3,
).map(lambda ps: tuple(dict.fromkeys(ps)))


@given(_PATTERNS, _SOURCES)
def test_projecting_twice_changes_nothing_and_never_the_input(
    patterns: tuple[str, ...], source: dict[str, Any]
) -> None:
    before = json.dumps(source, sort_keys=True)
    project = compile_fields(patterns)
    once = project(source)
    assert project(once) == once
    assert json.dumps(source, sort_keys=True) == before
    assert set(once) <= set(source)


@given(_PATTERNS, _PATTERNS, _SOURCES)
def test_more_patterns_never_select_less(
    first: tuple[str, ...], second: tuple[str, ...], source: dict[str, Any]
) -> None:
    both = compile_fields(first + second)(source)
    assert compile_fields(first + second)(both) == both
    for alone in (compile_fields(first)(source), compile_fields(second)(source)):
        assert compile_fields(first + second)(alone) == alone  # everything one kept, both keep
        assert set(alone) <= set(both)


# -- the backfill cuts its hits as the live ones, and keeps their whole digests ---------


def test_backfill_searches_ask_for_whole_sources() -> None:
    engine = PagedEngine([])
    for search in (search_with_sources("l", "x", 5), search_page("l", [("l", "1")])):
        search(engine)
    assert all("_source" not in body for body in engine.bodies)
    search_ids("l", "x", 5)(engine)
    assert engine.bodies[-1]["_source"] is False  # ids only


@pytest.mark.parametrize("size", [3, 40], ids=["one-search", "paged"])
def test_a_backfill_opened_with_fields_cuts_every_hit_and_keeps_its_whole_digest(size: int) -> None:
    engine = PagedEngine(docs(50))
    whole = {str(i): source_digest(doc) for i, doc in enumerate(engine.docs)}
    backfill = Backfill(engine, BackfillBudget(1_000_000), buffer=1000)  # type: ignore[arg-type]
    pages = run(backfill.open("l", "x", size, fields=("n",)))
    hits = list(pages.first)
    while not pages.done:
        pages.page_read()
        hits += run(pages.next())
    pages.close()
    assert len(hits) == size
    for hit in hits:
        assert isinstance(hit, CutHit)
        assert set(hit["_source"]) == {"n"}
        assert hit.whole == whole[hit["_id"]]
