"""Canonical form of Lucene query strings, so equivalent queries share a sid.

Parsed with luqum (maintained, pure Python, keeps explicit parentheses as
``Group`` nodes, which is what tells a written grouping from precedence).
Rewritten only where the engine's classic query parser provably gives the
same clauses whatever the order:

* a chain of ``AND`` only: every operand becomes MUST (or stays MUST_NOT);
* a chain of implicit operators only (``a +b -c``): each operand keeps its
  own prefix, none affects its neighbour;
* a chain of ``OR`` only, unless an operand carries ``+``: ``OR`` turns the
  clause *before* it into SHOULD, so ``+a OR b`` differs from ``b OR +a``.

Such chains are flattened (``(a AND b) AND c``; an OR or implicit group only
when none of its operands carries a prefix, since ``-x`` in ``(a OR -x)``
binds to that group), their operands sorted;
parentheses around a single operand or the whole query are dropped, and the
spelling is unified (``&&``/``||``/``!`` become ``AND``/``OR``/``NOT``,
whitespace single spaces). A chain that mixes ``AND``, ``OR`` and the default
operator without parentheses (``a AND b OR c``) is not boolean algebra in the
classic parser (each conjunction rewrites the clause before it), so it is
kept exactly in written order; groups inside it are still canonicalized.
Terms, phrases, fields, boosts, fuzziness, ranges and wildcards are never
touched. ``tests/integration/test_canonical_engine.py`` checks on the real
engine that canonical and original match the same documents.
"""

from __future__ import annotations

import re

from luqum import tree
from luqum.exceptions import ParseError
from luqum.parser import parser

_CHAINS: dict[type, str] = {
    tree.AndOperation: " AND ",
    tree.OrOperation: " OR ",
    tree.UnknownOperation: " ",
}
# Operator spellings luqum does not know. They are tokens only when they
# stand alone (classic Lucene lets "&" and "|" inside terms: a&&b is a term).
_SYMBOLIC = re.compile(r"(?<![^\s(])(&&|\|\|)(?=[\s(])|(?<![^\s(])!(?=[^\s=])")


class LuceneSyntaxError(ValueError):
    """luqum could not parse the query; the engine may still accept it."""


def segments(text: str, quotes: str = '"/') -> list[tuple[bool, str]]:
    """Split a query string into (quoted, text) runs: phrases and regexes vs the rest.

    Inside a phrase or regex every character is literal (escapes included);
    outside, a backslash escapes the next character, so ``\\"`` opens nothing.
    """
    runs: list[tuple[bool, str]] = []
    current: list[str] = []
    quote: str | None = None
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\":
            current.append(ch)
            escaped = True
            continue
        if quote is None and ch in quotes:
            runs.append((False, "".join(current)))
            current = [ch]
            quote = ch
        elif quote is not None and ch == quote:
            current.append(ch)
            runs.append((True, "".join(current)))
            current = []
            quote = None
        else:
            current.append(ch)
    runs.append((quote is not None, "".join(current)))
    return [run for run in runs if run[1]]


def _respell(query: str) -> str:
    """``&&``/``||``/``!`` to ``AND``/``OR``/``NOT``, outside phrases and regexes."""
    words = {"&&": "AND", "||": "OR"}
    return "".join(
        text if quoted else _SYMBOLIC.sub(lambda m: words.get(m.group(0), "NOT "), text)
        for quoted, text in segments(query)
    )


def squeeze(query: str) -> str:
    """Runs of whitespace to one space, except inside phrases and regexes."""
    return "".join(text if quoted else re.sub(r"\s+", " ", text) for quoted, text in segments(query)).strip()


def parse(query: str) -> tree.Item:
    """The luqum tree of a query string, operators respelled first."""
    try:
        return parser.parse(_respell(query))
    except (ParseError, TypeError, ValueError) as exc:
        raise LuceneSyntaxError(str(exc)) from None


def _is_chain(node: tree.Item) -> bool:
    return type(node) in _CHAINS


def _unwrap(node: tree.Item) -> tree.Item:
    """Drop parentheses that hold a single atom (``(a)`` is ``a``)."""
    while isinstance(node, tree.Group) and not isinstance(node, tree.FieldGroup) and not _is_chain(node.expr):
        node = node.expr
    return node


def _is_prefixed(node: tree.Item) -> bool:
    return isinstance(node, (tree.Not, tree.Plus, tree.Prohibit))


def _operands(node: tree.Item) -> list[tree.Item] | None:
    """The operands of a reorderable chain, flattened through groups; None if not reorderable."""
    kind = type(node)
    operands: list[tree.Item] = []
    for child in node.children:
        child = _unwrap(child)
        if isinstance(child, tree.Group) and type(child.expr) is kind:
            nested = _operands(child.expr)
            if nested is None or (kind is not tree.AndOperation and any(map(_is_prefixed, nested))):
                # A -x or +x inside (a OR -x) binds to that group only:
                # flattening it into an OR or implicit chain changes its scope.
                operands.append(child)
            else:
                operands.extend(nested)
        elif _is_chain(child):
            return None  # mixed operators without parentheses: keep as written
        else:
            operands.append(child)
    if kind is tree.OrOperation and any(isinstance(o, tree.Plus) for o in operands):
        return None
    return operands


def _render(node: tree.Item) -> str:
    node = _unwrap(node)
    if _is_chain(node):
        operands = _operands(node)
        if operands is None:
            return _render_written(node)
        return _CHAINS[type(node)].join(sorted(_render(o) for o in operands))
    if isinstance(node, tree.BaseGroup):  # f:( ... ), or a group around a chain
        return "(" + _render(node.expr) + ")"
    if isinstance(node, tree.SearchField):
        return f"{node.name}:{_render(node.expr)}"
    if isinstance(node, tree.Not):
        return "NOT " + _render_prefixed(node.a)
    if isinstance(node, tree.Plus):
        return "+" + _render_prefixed(node.a)
    if isinstance(node, tree.Prohibit):
        return "-" + _render_prefixed(node.a)
    if isinstance(node, tree.Boost):
        written = str(node).strip()
        return _render(node.expr) + written[written.rindex("^") :]
    return str(node).strip()


def _render_prefixed(node: tree.Item) -> str:
    """The operand of NOT/+/-: a prefixed operand keeps its parentheses (NOT NOT a is invalid)."""
    inner = _unwrap(node)
    if isinstance(inner, (tree.Not, tree.Plus, tree.Prohibit)):
        return "(" + _render(inner) + ")"
    return _render(inner)


def _render_written(node: tree.Item) -> str:
    """A mixed chain in written order; its unparenthesized sub-chains likewise."""
    if _is_chain(node):
        return _CHAINS[type(node)].join(_render_written(c) for c in node.children)
    return _render(node)


def canonical_lucene(query: str) -> str:
    """The canonical spelling of a Lucene query string (raises LuceneSyntaxError)."""
    return canonical_of_tree(parse(query))


def canonical_of_tree(node: tree.Item) -> str:
    """The canonical spelling of an already parsed query string (``parse``)."""
    while isinstance(node, tree.Group) and not isinstance(node, tree.FieldGroup):
        node = node.expr  # parentheses around the whole query
    return _render(node)


def lucene_field_names(query: str) -> set[str]:
    """Names of the fields a query string searches explicitly (``_exists_:f`` names ``f``)."""
    return field_names_of_tree(parse(query))


def field_names_of_tree(root: tree.Item) -> set[str]:
    """``lucene_field_names`` of an already parsed query string."""
    found: set[str] = set()

    def walk(node: tree.Item) -> None:
        if isinstance(node, tree.SearchField):
            if node.name == "_exists_":
                found.add(str(node.expr).strip())
            else:
                found.add(node.name.replace("\\", ""))
        for child in node.children:
            walk(child)

    walk(root)
    return found
