"""What a query may be: size, nesting, clause count and an allowlist of DSL query types.

Every registered query runs against every ingested document for as long as
anyone listens, and registering is open to anonymous browsers, so a query is
checked before it reaches the engine. DSL is checked against an *allowlist*:
a query type not listed here is refused, so a type added to Elasticsearch
later is not let through by default. Refused on purpose:

* anything that runs a script (``script``, ``script_score``,
  ``function_score``, ``terms_set`` with ``minimum_should_match_script``,
  ``intervals`` with a script filter);
* anything that fetches other data (``terms`` lookup ``{"terms": {"f":
  {"index": ...}}}``, ``geo_shape``/``shape`` with ``indexed_shape``,
  ``more_like_this``, ``percolate``), or joins (``has_child``, ``has_parent``,
  ``parent_id``);
* ``wrapper``, an opaque base64 query that would bypass every other check;
* scoring-only queries (``distance_feature``, ``rank_feature``, ``pinned``,
  ``script_score``): percolation only asks *whether* a document matches.

Query strings keep the engine's full syntax: regexes and leading wildcards
are allowed, since a percolated query runs against one document at a time
(the engine's own ``index.max_regex_length`` and determinization limits still
apply); their cost is bounded by the size and clause limits here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from luqum import tree

from common.json_shape import inspect
from common.query.identity import InvalidQuery, normalize_query
from common.query.lucene import LuceneSyntaxError, parse

#: Leaf query types: their body holds field names and values, no queries.
LEAF_TYPES = frozenset(
    {
        "match_all",
        "match_none",
        "match",
        "match_phrase",
        "match_phrase_prefix",
        "match_bool_prefix",
        "multi_match",
        "combined_fields",
        "query_string",
        "simple_query_string",
        "term",
        "terms",
        "terms_set",
        "range",
        "exists",
        "prefix",
        "wildcard",
        "regexp",
        "fuzzy",
        "ids",
        "intervals",
        "geo_bounding_box",
        "geo_distance",
        "geo_polygon",
        "geo_shape",
        "shape",
        "span_term",
    }
)

#: Compound query types: which keys of their body hold sub-queries.
COMPOUND_TYPES: dict[str, tuple[str, ...]] = {
    "bool": ("must", "filter", "should", "must_not"),
    "boosting": ("positive", "negative"),
    "constant_score": ("filter",),
    "dis_max": ("queries",),
    "nested": ("query",),
    "span_near": ("clauses",),
    "span_or": ("clauses",),
    "span_not": ("include", "exclude"),
    "span_first": ("match",),
    "span_containing": ("big", "little"),
    "span_within": ("big", "little"),
    "span_multi": ("match",),
    "field_masking_span": ("query",),
}

ALLOWED_TYPES = LEAF_TYPES | frozenset(COMPOUND_TYPES)

#: Keys of a compound body that would carry something other than queries.
_FORBIDDEN_COMPOUND_KEYS = frozenset({"inner_hits", "script"})


@dataclass(frozen=True)
class QueryLimits:
    """Bounds on one registered query (``ESTROM_QUERY_MAX_*``)."""

    #: UTF-8 bytes of the query string, or of the DSL as compact JSON
    max_bytes: int = 32 * 1024
    #: nesting: JSON objects/arrays of DSL, luqum tree levels of a query string
    max_depth: int = 32
    #: query clauses: DSL query objects plus terms of query strings
    max_clauses: int = 1024


def _too(what: str, value: int, limit: int, variable: str) -> InvalidQuery:
    return InvalidQuery(f"query {what} is {value}, over the limit of {limit} ({variable})")


def validate_query(query: object, limits: QueryLimits) -> str | dict[str, Any]:
    """The normalized query (``normalize_query``), checked against ``limits``: what registration uses."""
    normalized = normalize_query(query)
    check_query(normalized, limits)
    return normalized


#: Query strings parsed while checking, by their text (None: luqum cannot parse it),
#: so that one registration parses each query string once (``common/query/prepared.py``).
ParsedStrings = dict[str, "tree.Item | None"]


def check_query(
    query: str | dict[str, Any], limits: QueryLimits, parsed: ParsedStrings | None = None
) -> None:
    """Raise InvalidQuery naming the limit or construct a normalized query breaks.

    ``parsed`` collects the trees of the query strings it parsed.
    """
    trees: ParsedStrings = {} if parsed is None else parsed
    if isinstance(query, str):
        _check_size(query, limits)
        _lucene_clauses(query, limits, trees)
        return
    depth, problem = inspect(query, limits.max_depth)
    if depth > limits.max_depth:
        raise InvalidQuery(
            f"query nesting depth is over the limit of {limits.max_depth} (ESTROM_QUERY_MAX_DEPTH)"
        )
    if problem:
        raise InvalidQuery(problem)
    _check_size(json.dumps(query, separators=(",", ":"), ensure_ascii=False), limits)
    clauses = 0
    for kind, body in _query_nodes(query):
        clauses += 1
        _check_node(kind, body)
        if kind == "query_string" and isinstance(body.get("query"), str):
            clauses += _lucene_clauses(body["query"], limits, trees)
        if clauses > limits.max_clauses:
            raise _too("clause count", clauses, limits.max_clauses, "ESTROM_QUERY_MAX_CLAUSES")


def _check_size(text: str, limits: QueryLimits) -> None:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidQuery("query holds an unpaired surrogate, which is not valid Unicode") from None
    if size > limits.max_bytes:
        raise _too("size in bytes", size, limits.max_bytes, "ESTROM_QUERY_MAX_BYTES")


def _query_nodes(query: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (type, body) of a DSL query, sub-queries included; refuses types off the allowlist."""
    stack: list[Any] = [query]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or len(node) != 1:
            raise InvalidQuery(
                "every query must be an object with exactly one query type, e.g. "
                '{"term": {"level": "error"}}, got ' + _excerpt(node)
            )
        kind, body = next(iter(node.items()))
        if kind not in ALLOWED_TYPES:
            raise InvalidQuery(
                f"query type {kind!r} is not allowed in a registered query; allowed: "
                + ", ".join(sorted(ALLOWED_TYPES))
            )
        if not isinstance(body, dict):
            raise InvalidQuery(f"query type {kind!r} must hold an object, got {_excerpt(body)}")
        yield kind, body
        for key in COMPOUND_TYPES.get(kind, ()):
            sub = body.get(key)
            if sub is None:
                continue
            stack.extend(sub if isinstance(sub, list) else [sub])


def _check_node(kind: str, body: dict[str, Any]) -> None:
    """Forbidden forms of allowed types: lookups, scripts, indexed shapes."""
    if kind in COMPOUND_TYPES:
        bad = _FORBIDDEN_COMPOUND_KEYS & set(body)
        if bad:
            raise InvalidQuery(f"{kind!r} with {sorted(bad)[0]!r} is not allowed in a registered query")
    elif kind == "terms":
        for name, value in body.items():
            if isinstance(value, dict):
                raise InvalidQuery(
                    f"terms lookup (terms of {name!r} fetched from another document) is not allowed; "
                    "list the values instead"
                )
    elif kind in ("geo_shape", "shape"):
        for name, value in body.items():
            if isinstance(value, dict) and "indexed_shape" in value:
                raise InvalidQuery(
                    f"{kind!r} with an indexed_shape of {name!r} is not allowed; give the shape"
                )
    elif kind == "terms_set":
        for name, value in body.items():
            if isinstance(value, dict) and "minimum_should_match_script" in value:
                raise InvalidQuery(
                    f"terms_set of {name!r} with a script is not allowed; use minimum_should_match_field"
                )
    elif kind == "intervals" and _holds_key(body, "script"):
        raise InvalidQuery("intervals with a script filter is not allowed in a registered query")


def _holds_key(value: Any, key: str) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def parse_or_none(query: str, parsed: ParsedStrings) -> tree.Item | None:
    """The tree of ``query``, parsed once per ``parsed``; None if luqum cannot parse it."""
    if query not in parsed:
        try:
            parsed[query] = parse(query)
        except LuceneSyntaxError:
            parsed[query] = None  # the engine decides, and names the syntax error
    return parsed[query]


def _lucene_clauses(query: str, limits: QueryLimits, parsed: ParsedStrings) -> int:
    """Terms (leaves) of a query string; raises past the depth or clause limit."""
    root = parse_or_none(query, parsed)
    if root is None:
        return 1
    leaves = 0
    stack: list[tuple[tree.Item, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise InvalidQuery(
                f"query string nesting depth is over the limit of {limits.max_depth} (ESTROM_QUERY_MAX_DEPTH)"
            )
        children = node.children
        if not children:
            leaves += 1
            if leaves > limits.max_clauses:
                raise _too("string clause count", leaves, limits.max_clauses, "ESTROM_QUERY_MAX_CLAUSES")
        stack.extend((child, depth + 1) for child in children)
    return leaves


def _excerpt(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
