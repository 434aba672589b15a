"""Query identity: what a registered query is, and its subscription id.

A query arrives as a Lucene query string or as query DSL (optionally wrapped
in ``{"query": ...}``). Its sid is farmhash64 of the canonical form of
(index, query), so that spellings which cannot change the match set share
one subscription: for DSL key order, ``bool`` clause order and ``terms``
value order; for query strings operand order of pure AND/OR/implicit chains,
redundant parentheses, operator spelling and whitespace (``common/query/lucene.py``).
The canonical query is also what gets stored, so every subscriber of a sid
is served by exactly the same query, whoever registered it first.
"""

from __future__ import annotations

import json
from typing import Any

import farmhash

from common.query.lucene import LuceneSyntaxError, canonical_lucene, squeeze

#: bool clause lists whose order cannot change what matches.
_UNORDERED_BOOL = ("must", "filter", "should", "must_not")


class InvalidQuery(ValueError):
    """The query is not a query estrom can register; the message says why."""


class LimitExceeded(InvalidQuery):
    """A query over one of the limits; ``limit`` names its setting (``ESTROM_QUERY_MAX_FIELDS``)."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


def parse_query_param(raw: str) -> str | dict[str, Any]:
    """A query from a URL parameter: a JSON object is DSL, anything else a query string."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidQuery(f"q looks like JSON but does not parse: {exc}") from None
        if isinstance(value, dict):
            return value
    return raw


def normalize_query(query: object) -> str | dict[str, Any]:
    """Validate the shape of a query and unwrap ``{"query": ...}``.

    Returns the query string, or the DSL object with exactly one query type.
    """
    if isinstance(query, str):
        if not query.strip():
            raise InvalidQuery("query string must not be empty")
        return query
    if isinstance(query, dict):
        if set(query) == {"query"}:
            query = query["query"]
            if not isinstance(query, dict):
                raise InvalidQuery('"query" must hold a query DSL object')
        if len(query) != 1:
            raise InvalidQuery(
                "query DSL must be an object with exactly one query type, e.g. "
                '{"match": {"message": "error"}}; got keys ' + ", ".join(sorted(query))
                if query
                else "query DSL must not be an empty object"
            )
        key = next(iter(query))
        if not isinstance(query[key], dict):
            raise InvalidQuery(f"query type {key!r} must hold an object")
        return query
    raise InvalidQuery(f"query must be a string or a JSON object, not {type(query).__name__}")


def to_dsl(query: str | dict[str, Any]) -> dict[str, Any]:
    """The DSL the percolator stores: query strings become ``query_string`` queries."""
    if isinstance(query, str):
        return {"query_string": {"query": query}}
    return query


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_dsl(node: Any, parent_key: str | None = None) -> Any:
    """Order-insensitive parts of query DSL put in a fixed order."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if parent_key == "bool" and key in _UNORDERED_BOOL:
                clauses = value if isinstance(value, list) else [value]
                canon = [canonical_dsl(c) for c in clauses]
                out[key] = sorted(canon, key=_canonical_json)
            elif parent_key == "terms" and isinstance(value, list):
                out[key] = sorted(value, key=_canonical_json)
            else:
                out[key] = canonical_dsl(value, key)
        return out
    if isinstance(node, list):
        return [canonical_dsl(v) for v in node]
    return node


def canonicalize(query: str | dict[str, Any]) -> str | dict[str, Any]:
    """The canonical spelling of a normalized query, itself a valid query.

    A query string luqum cannot parse keeps its words, whitespace squeezed;
    the engine then decides whether it is valid.
    """
    if isinstance(query, str):
        try:
            return canonical_lucene(query)
        except LuceneSyntaxError:
            return squeeze(query)
    return canonical_dsl(query)


def canonical_form(query: str | dict[str, Any]) -> str:
    """A string equal for queries that cannot differ in what they match."""
    return form_of_canonical(canonicalize(query))


def form_of_canonical(canonical: str | dict[str, Any]) -> str:
    """``canonical_form`` of a query that is canonical already (canonicalising is a fixed point)."""
    return _canonical_json(["lucene" if isinstance(canonical, str) else "dsl", canonical])


def sid_for(index: str, query: str | dict[str, Any]) -> str:
    """16 lowercase hex chars: farmhash64 of (index, canonical query)."""
    return sid_of_form(index, canonical_form(query))


def sid_of_form(target: str, form: str) -> str:
    """``sid_for`` from a canonical target and a ``canonical_form`` computed once."""
    return format(farmhash.hash64(target + "\x00" + form), "016x")
