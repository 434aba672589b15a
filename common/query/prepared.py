"""A query as registration needs it: checked, canonical, its fields, what is stored, parsed once.

Registering a query used to parse its Lucene string four times (limits,
canonical form, the sid's canonical form again, field names) and to
canonicalise it twice. ``prepare`` parses each query string once and hands
the tree to every step; the sid comes from the canonical form computed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.query.fields import query_fields
from common.query.identity import (
    canonical_dsl,
    form_of_canonical,
    normalize_query,
    sid_of_form,
    to_dsl,
)
from common.query.limits import (
    ParsedStrings,
    QueryLimits,
    capped_dsl,
    check_fields,
    check_query,
    parse_or_none,
)
from common.query.lucene import canonical_of_tree, squeeze


@dataclass(frozen=True)
class PreparedQuery:
    """What is stored and hashed for one query."""

    #: the canonical query, itself a valid query (what ``describe_query`` returns)
    canonical: str | dict[str, Any]
    #: ``canonical_form`` of it: the query's part of the sid
    form: str
    #: the fields to map in the percolator index before storing it
    fields: frozenset[str]
    #: what the percolator stores: ``dsl`` with the cost caps written in (``capped_dsl``)
    stored: dict[str, Any] | None = None

    @property
    def dsl(self) -> dict[str, Any]:
        """The canonical query as DSL (query strings become ``query_string``)."""
        return to_dsl(self.canonical)

    def sid(self, target: str) -> str:
        """The sid of this query on ``target`` (a canonical read target)."""
        return sid_of_form(target, self.form)


def prepare(query: object, limits: QueryLimits) -> PreparedQuery:
    """Validate (shape and limits), canonicalise and analyse ``query``; raises InvalidQuery."""
    normalized = normalize_query(query)
    parsed: ParsedStrings = {}
    check_query(normalized, limits, parsed)
    canonical: str | dict[str, Any]
    if isinstance(normalized, str):
        root = parse_or_none(normalized, parsed)
        canonical = squeeze(normalized) if root is None else canonical_of_tree(root)
        # The canonical string names the same fields as the one parsed.
        parsed = {canonical: root}
    else:
        canonical = canonical_dsl(normalized)  # nested query strings are kept as written
    dsl = to_dsl(canonical)
    fields = frozenset(query_fields(dsl, parsed))
    check_fields(fields, limits)
    return PreparedQuery(canonical, form_of_canonical(canonical), fields, capped_dsl(dsl, limits))
