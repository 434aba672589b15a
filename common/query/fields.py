"""Which document fields a query refers to.

The percolator parses a query once, when it is stored, against the mapping
of the percolator index at that moment; a field it does not know yet makes
``query_string``, ``term`` and ``range`` queries match nothing, ever
(``index.percolator.map_unmapped_fields_as_text`` only rescues ``match``;
elastic/elasticsearch#63150, verified on 7.17). So before storing a query the
beater maps every field the query names. This module finds those names.
"""

from __future__ import annotations

import re
from typing import Any

from luqum import tree

from common.query.lucene import LuceneSyntaxError, field_names_of_tree, lucene_field_names

# Leaf query types whose single key (other than options) is a field name.
_FIELD_KEYED = frozenset(
    {
        "match",
        "match_phrase",
        "match_phrase_prefix",
        "match_bool_prefix",
        "term",
        "terms",
        "range",
        "prefix",
        "wildcard",
        "regexp",
        "fuzzy",
        "intervals",
        "span_term",
        "geo_distance",
        "geo_bounding_box",
        "geo_shape",
    }
)
_OPTION_KEYS = frozenset(
    {"boost", "_name", "validation_method", "ignore_unmapped", "distance", "distance_type"}
)
_FIELD_LIST_QUERIES = frozenset({"multi_match", "query_string", "simple_query_string", "combined_fields"})

# field:value in Lucene syntax; a field name may hold dots, dashes, @ and
# escaped characters, and may end in a wildcard (which we cannot map).
_LUCENE_FIELD = re.compile(r"(?<![\w\\.@-])((?:[A-Za-z0-9_@]|\\.)(?:[\w.@-]|\\.)*)\s*:")
_EXISTS = re.compile(r"_exists_\s*:\s*((?:[\w.@-]|\\.)+)")


def _strip_boost(name: str) -> str:
    return name.split("^", 1)[0]


def _without_phrases(text: str) -> str:
    """Blank out quoted phrases and regexes so their colons are not taken for fields."""
    out = []
    quote: str | None = None
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
            out.append(" " if quote else ch)
            continue
        if ch == "\\":
            escaped = True
            out.append(" " if quote else ch)
            continue
        if quote:
            if ch == quote:
                quote = None
            out.append(" ")
            continue
        if ch in '"/':
            quote = ch
            out.append(" ")
            continue
        out.append(ch)
    return "".join(out)


#: Query strings already parsed, by text (None: luqum cannot parse it).
Parsed = dict[str, "tree.Item | None"]


def lucene_fields(query: str, parsed: Parsed | None = None) -> set[str]:
    """Field names named explicitly in a Lucene query string.

    From luqum's parse tree (taken from ``parsed`` when it holds it); a
    pattern scan when luqum cannot parse it.
    """
    if parsed is not None and query in parsed:
        root = parsed[query]
        if root is None:
            return _scanned_lucene_fields(query)
        names = field_names_of_tree(root)
    else:
        try:
            names = lucene_field_names(query)
        except LuceneSyntaxError:
            return _scanned_lucene_fields(query)
    return {n for n in names if n and "*" not in n and "?" not in n}


def _scanned_lucene_fields(query: str) -> set[str]:
    text = _without_phrases(query)
    found: set[str] = set()
    for match in _EXISTS.finditer(query):
        found.add(match.group(1).replace("\\", ""))
    for match in _LUCENE_FIELD.finditer(text):
        name = match.group(1).replace("\\", "")
        if name in ("_exists_",) or "*" in name or "?" in name:
            continue
        found.add(name)
    return found


def dsl_fields(node: Any, parsed: Parsed | None = None) -> set[str]:
    """Field names a query DSL tree refers to (walks compound queries too)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= dsl_fields(item, parsed)
        return found
    if not isinstance(node, dict):
        return found
    for key, value in node.items():
        if key in _FIELD_KEYED and isinstance(value, dict):
            found |= {k for k in value if k not in _OPTION_KEYS}
        elif key == "exists" and isinstance(value, dict) and isinstance(value.get("field"), str):
            found.add(value["field"])
        elif key in _FIELD_LIST_QUERIES and isinstance(value, dict):
            for f in value.get("fields", []) or []:
                if isinstance(f, str) and "*" not in f:
                    found.add(_strip_boost(f))
            if isinstance(value.get("default_field"), str) and "*" not in value["default_field"]:
                found.add(value["default_field"])
            if key == "query_string" and isinstance(value.get("query"), str):
                found |= lucene_fields(value["query"], parsed)
        else:
            found |= dsl_fields(value, parsed)
    return found


def query_fields(dsl: dict[str, Any], parsed: Parsed | None = None) -> set[str]:
    """The concrete fields to map before storing ``dsl`` (query strings found in ``parsed`` are not parsed again).

    ``foo.keyword`` is reported as ``foo``: mapping the parent as text with a
    keyword sub-field (what dynamic mapping does) covers both.
    """
    out = set()
    for name in dsl_fields(dsl, parsed):
        name = name.strip()
        if not name or name.startswith("_"):
            continue
        if name.endswith(".keyword"):
            name = name[: -len(".keyword")]
        out.add(name)
    return out
