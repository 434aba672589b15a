"""Hypothesis strategies for Lucene query strings over a tiny vocabulary.

Queries are built as trees and written out, so tests can also write the
same tree with commutative operands shuffled, or with another spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

FIELDS = ["f1", "f2", "f3"]
TERMS = ["t1", "t2", "t3", "t4"]


@dataclass(frozen=True)
class Leaf:
    text: str


@dataclass(frozen=True)
class Chain:
    op: str  # "AND", "OR" or "" (implicit)
    operands: tuple[object, ...]


@dataclass(frozen=True)
class Prefixed:
    prefix: str  # "NOT ", "-", "+"
    operand: object


def leaves() -> st.SearchStrategy[Leaf]:
    term = st.sampled_from(TERMS)
    return st.one_of(
        st.builds(lambda f, t: Leaf(f"{f}:{t}"), st.sampled_from(FIELDS), term),
        term.map(Leaf),  # default field
        st.builds(lambda f, t: Leaf(f'{f}:"{t} {t}"'), st.sampled_from(FIELDS), term),
        st.builds(lambda f: Leaf(f"_exists_:{f}"), st.sampled_from(FIELDS)),
        st.builds(lambda f, t: Leaf(f"{f}:{t[:2]}*"), st.sampled_from(FIELDS), term),
    )


def trees(mixed: bool = False) -> st.SearchStrategy[object]:
    """Query trees; with ``mixed`` the writer may leave sub-chains unparenthesized."""

    def extend(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
        chain = st.builds(
            Chain, st.sampled_from(["AND", "OR", ""]), st.lists(children, min_size=2, max_size=4).map(tuple)
        )
        prefixed = st.builds(Prefixed, st.sampled_from(["NOT ", "-", "+"]), children)
        return st.one_of(chain, prefixed)

    return st.recursive(leaves(), extend, max_leaves=8)


def write(node: object, *, spell: str = "words", parens: str = "always") -> str:
    """Write a tree as a query string.

    ``spell``: "words" (AND/OR/NOT) or "symbols" (&&/||/!). ``parens``:
    "always" puts sub-chains in parentheses; "never" leaves them bare (the
    classic parser then reads a mixed chain its own way); "extra" adds
    redundant parentheses and spaces.
    """
    if isinstance(node, Leaf):
        return f"({node.text})" if parens == "extra" else node.text
    if isinstance(node, Prefixed):
        prefix = node.prefix
        if spell == "symbols" and prefix == "NOT ":
            prefix = "!"
        inner = write(node.operand, spell=spell, parens=parens)
        if isinstance(node.operand, (Chain, Prefixed)):
            inner = f"({inner})"  # NOT NOT a is not a query
        return prefix + inner
    assert isinstance(node, Chain)
    op = {"AND": "&&", "OR": "||"}.get(node.op, "") if spell == "symbols" else node.op
    sep = f"  {op}   " if parens == "extra" else (f" {op} " if op else " ")
    if not op:
        sep = "   " if parens == "extra" else " "
    parts = []
    for child in node.operands:
        text = write(child, spell=spell, parens=parens)
        if isinstance(child, Chain) and parens != "never":
            text = f"({text})"
        parts.append(text)
    return sep.join(parts)


def shuffled(node: object, rnd: object) -> object:
    """The same tree with the operands of every reorderable chain permuted.

    OR chains with a ``+`` operand are not reorderable (OR rewrites the clause
    before it), so they keep their order.
    """
    if isinstance(node, Prefixed):
        return Prefixed(node.prefix, shuffled(node.operand, rnd))
    if isinstance(node, Chain):
        operands = [shuffled(c, rnd) for c in node.operands]
        if not (node.op == "OR" and any(isinstance(o, Prefixed) and o.prefix == "+" for o in node.operands)):
            rnd.shuffle(operands)  # type: ignore[attr-defined]
        return Chain(node.op, tuple(operands))
    return node
