"""Canonical query strings: what is rewritten, what is left alone, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.query.identity import sid_for
from common.query.lucene import LuceneSyntaxError, canonical_lucene, lucene_field_names
from tests.lucene_strategies import shuffled, trees, write


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("b AND a", "a AND b"),
        ("b && a", "a AND b"),
        ("b || a", "a OR b"),
        ("!b AND a", "a AND NOT b"),
        ("(b AND a)", "a AND b"),
        ("c AND (b AND a)", "(a AND c) AND b"),
        ("((b OR a)) OR c", "c OR b OR a"),
        ("b a", "a   b"),
        ("f:(y OR x)", "f:(x OR y)"),
        ("(a OR b) AND (d OR c)", "(c OR d) AND (b OR a)"),
        ("-(b a) c", "c -(a b)"),
        ("(a)", "a"),
    ],
)
def test_equivalent_spellings_share_a_sid(a: str, b: str) -> None:
    assert canonical_lucene(a) == canonical_lucene(b)
    assert sid_for("events", a) == sid_for("events", b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # Mixed chains are not boolean algebra in the classic parser.
        ("a AND b OR c", "b AND a OR c"),
        ("a AND b OR c", "c OR a AND b"),
        ("a b AND c", "b a AND c"),
        # OR rewrites the clause before it: +a OR b is a OR b; b OR +a requires a.
        ("+a OR b", "b OR +a"),
        # Never touched: case, phrases, fuzziness, boosts, fields, ranges.
        ("A", "a"),
        ('m:"a  b"', 'm:"a b"'),
        ("x~", "x~1"),
        ("x^2", "x"),
        ("f:a", "g:a"),
        ("n:[1 TO 5]", "n:[1 TO 5}"),
        ("a OR b", "a b AND c"),
    ],
)
def test_different_queries_keep_different_sids(a: str, b: str) -> None:
    assert sid_for("events", a) != sid_for("events", b)


def test_mixed_chain_is_kept_as_written_but_its_groups_are_canonical() -> None:
    assert canonical_lucene("z AND y OR (c OR b)") == "z AND y OR (b OR c)"


def test_symbol_spellings_inside_terms_and_phrases_are_not_operators() -> None:
    assert canonical_lucene('m:"a && b"') == 'm:"a && b"'
    assert canonical_lucene("a&&b") == "a&&b"


def test_unparsable() -> None:
    with pytest.raises(LuceneSyntaxError):
        canonical_lucene("a AND (b")


def test_field_names() -> None:
    assert lucene_field_names('a:1 AND (b.c:2 OR _exists_:d) AND "x:y"') == {"a", "b.c", "d"}


@settings(max_examples=300, deadline=None)
@given(tree=trees(), seed=st.randoms(use_true_random=False))
def test_shuffling_commutative_operands_keeps_the_sid(tree: object, seed: object) -> None:
    original = write(tree)
    assert sid_for("i", original) == sid_for("i", write(shuffled(tree, seed)))


@settings(max_examples=300, deadline=None)
@given(tree=trees())
def test_spelling_and_redundant_parentheses_do_not_matter(tree: object) -> None:
    plain = canonical_lucene(write(tree))
    assert canonical_lucene(write(tree, spell="symbols")) == plain
    assert canonical_lucene(write(tree, parens="extra")) == plain


@settings(max_examples=300, deadline=None)
@given(tree=trees(), parens=st.sampled_from(["always", "never"]))
def test_canonical_form_is_a_fixed_point(tree: object, parens: str) -> None:
    once = canonical_lucene(write(tree, parens=parens))
    assert canonical_lucene(once) == once
