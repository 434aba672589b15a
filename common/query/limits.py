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

Query strings keep the engine's full syntax, within bounds
(``common/query/expensive.py``): a regular expression is at most
``max_regex_length`` characters and its automaton at most
``max_determinized_states`` states, fuzzy and prefix queries expand to at
most ``max_expansions`` terms, and leading wildcards (``*rror``) are allowed
unless ``leading_wildcards`` is off. A percolated query runs against one
document at a time, but it is parsed again for every batch it is a
candidate for, so what its parse costs is bounded here.

A query may name at most ``max_fields`` fields: every field it names is
mapped in the shared percolator index before it is stored, and that index
has one field limit for every target (``beater/store/budget.py`` bounds the
fields a target's and a reader's queries may add together).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from luqum import tree

from common.json_shape import inspect
from common.query.expensive import cap_node, check_lucene_cost, check_node_cost
from common.query.fields import query_fields
from common.query.identity import InvalidQuery, LimitExceeded, normalize_query, to_dsl
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
    """Bounds on one registered query (``ESTROM_QUERY_MAX_*``), and on the fields queries add together."""

    #: UTF-8 bytes of the query string, or of the DSL as compact JSON
    max_bytes: int = 32 * 1024
    #: nesting: JSON objects/arrays of DSL, luqum tree levels of a query string
    max_depth: int = 32
    #: query clauses: DSL query objects plus terms of query strings
    max_clauses: int = 1024
    #: distinct fields one query names (each is mapped in the shared percolator index)
    max_fields: int = 100
    #: characters of one regular expression (the engine's own ``index.max_regex_length`` default)
    max_regex_length: int = 1000
    #: states a regular expression's automaton may have (the engine's own default)
    max_determinized_states: int = 10_000
    #: terms one fuzzy or prefix query expands to (the engine's own default)
    max_expansions: int = 50
    #: whether a wildcard may start a term (``*rror``); off: refused
    leading_wildcards: bool = True
    #: fields no covered index maps that the queries of one read target may name together; 0: no limit
    fields_per_target: int = 500
    #: the same for the queries one reader registered (where the beater knows the reader); 0: no limit
    fields_per_principal: int = 1000


def _too(what: str, value: int, limit: int, variable: str) -> LimitExceeded:
    return LimitExceeded(f"query {what} is {value}, over the limit of {limit} ({variable})", variable)


def validate_query(query: object, limits: QueryLimits) -> str | dict[str, Any]:
    """The normalized query (``normalize_query``), checked against ``limits``: what registration uses."""
    normalized = normalize_query(query)
    parsed: ParsedStrings = {}
    check_query(normalized, limits, parsed)
    check_fields(query_fields(to_dsl(normalized), parsed), limits)
    return normalized


def check_fields(fields: set[str] | frozenset[str], limits: QueryLimits) -> None:
    """Raise LimitExceeded when a query names more than ``max_fields`` fields."""
    if len(fields) > limits.max_fields:
        shown = ", ".join(sorted(fields)[:5])
        raise LimitExceeded(
            f"query names {len(fields)} fields ({shown}, ...), over the limit of {limits.max_fields} "
            "(ESTROM_QUERY_MAX_FIELDS): every field a query names is mapped in the shared "
            "percolator index, whose field limit every target shares",
            "ESTROM_QUERY_MAX_FIELDS",
        )


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
        check_lucene_cost(query, trees.get(query), limits)
        return
    depth, problem = inspect(query, limits.max_depth)
    if depth > limits.max_depth:
        raise LimitExceeded(
            f"query nesting depth is over the limit of {limits.max_depth} (ESTROM_QUERY_MAX_DEPTH)",
            "ESTROM_QUERY_MAX_DEPTH",
        )
    if problem:
        raise InvalidQuery(problem)
    _check_size(json.dumps(query, separators=(",", ":"), ensure_ascii=False), limits)
    clauses = 0
    for kind, body in _query_nodes(query):
        clauses += 1
        _check_node(kind, body)
        check_node_cost(kind, body, limits)
        if kind == "query_string" and isinstance(body.get("query"), str):
            clauses += _lucene_clauses(body["query"], limits, trees)
            check_lucene_cost(body["query"], trees.get(body["query"]), limits)
        if clauses > limits.max_clauses:
            raise _too("clause count", clauses, limits.max_clauses, "ESTROM_QUERY_MAX_CLAUSES")


def capped_dsl(dsl: dict[str, Any], limits: QueryLimits) -> dict[str, Any]:
    """What the percolator stores for ``dsl`` (checked already): the cost caps written into its nodes.

    Regexes get ``max_determinized_states``, fuzzy and prefix queries
    ``max_expansions``, query strings both (and ``allow_leading_wildcard:
    false`` where leading wildcards are refused): so the engine itself holds
    every stored query to the limits, for query strings too that luqum could
    not parse (``common/query/expensive.py``).
    """
    if not isinstance(dsl, dict) or len(dsl) != 1:
        return dsl
    kind, body = next(iter(dsl.items()))
    if not isinstance(body, dict):
        return dsl
    out = cap_node(kind, body, limits)
    for key in COMPOUND_TYPES.get(kind, ()):
        sub = out.get(key)
        if sub is None:
            continue
        if out is body:
            out = dict(body)
        out[key] = [capped_dsl(s, limits) for s in sub] if isinstance(sub, list) else capped_dsl(sub, limits)
    return {kind: out}


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
            raise LimitExceeded(
                f"query string nesting depth is over the limit of {limits.max_depth} (ESTROM_QUERY_MAX_DEPTH)",
                "ESTROM_QUERY_MAX_DEPTH",
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
