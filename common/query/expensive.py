"""What one query may cost the engine to build: regular expressions, wildcards, fuzzy and prefix expansions.

The percolator keeps a stored query serialized and builds it again for every
batch it is a candidate for, so the cost of building it is paid over and over:

* a regular expression is turned into an automaton; its length is bounded
  (``max_regex_length``, ``ESTROM_QUERY_MAX_REGEX_LENGTH``) and so are its
  states (``max_determinized_states``, written into the stored query, so the
  engine refuses one that would need more);
* fuzzy and prefix queries expand to terms; ``max_expansions`` (and a query
  string's ``fuzzy_max_expansions``) is written into the stored query,
  and an explicit larger value is refused;
* a wildcard that starts a term (``*rror``) visits every term of the field:
  allowed by default (a percolated document has few), refused with
  ``leading_wildcards`` off (``ESTROM_QUERY_LEADING_WILDCARDS=0``), where the
  stored query string also carries ``allow_leading_wildcard: false``.

Checks raise ``LimitExceeded`` naming the setting; ``cap_node`` writes the
caps into a stored query node (``common/query/limits.py``'s ``capped_dsl``
walks the query). The canonical query, and so the sid and what
``describe_query`` answers, is left as written.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from luqum import tree

from common.query.identity import LimitExceeded
from common.query.lucene import segments

if TYPE_CHECKING:
    from common.query.limits import QueryLimits

#: Keys of a field-keyed query body that are options, not fields.
_OPTIONS = frozenset({"boost", "_name"})
#: Query types whose field spec may carry ``max_expansions``.
_EXPANDING = frozenset({"fuzzy", "match", "match_phrase_prefix", "match_bool_prefix"})
#: A wildcard opening a term of a query string luqum could not parse.
_LEADING_WILDCARD = re.compile(r"(?:^|[\s(:!+\-])([*?]\S*)")


def _field_specs(body: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in body.items() if k not in _OPTIONS]


def _regex_too_long(length: int, limits: QueryLimits, where: str) -> LimitExceeded:
    return LimitExceeded(
        f"regular expression {where} is {length} characters, over the limit of "
        f"{limits.max_regex_length} (ESTROM_QUERY_MAX_REGEX_LENGTH)",
        "ESTROM_QUERY_MAX_REGEX_LENGTH",
    )


def _over(param: str, value: Any, cap: int, setting: str, where: str) -> LimitExceeded:
    return LimitExceeded(f"{param} of {where} is {value}, over the limit of {cap} ({setting})", setting)


def _leading(term: str) -> LimitExceeded:
    shown = term if len(term) <= 40 else term[:37] + "..."
    return LimitExceeded(
        f"leading wildcard in {shown!r} is not allowed here: it visits every term of the field "
        "(ESTROM_QUERY_LEADING_WILDCARDS=0)",
        "ESTROM_QUERY_LEADING_WILDCARDS",
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _check_param(body: dict[str, Any], param: str, cap: int, setting: str, where: str) -> None:
    value = _number(body.get(param))
    if value is not None and value > cap:
        raise _over(param, body[param], cap, setting, where)


def _starts_with_wildcard(value: str) -> bool:
    return value[:1] in ("*", "?") and value != "*"


def check_node_cost(kind: str, body: dict[str, Any], limits: QueryLimits) -> None:
    """Refuse one DSL query node (``kind``, ``body``) over the cost limits."""
    if kind == "regexp":
        for field, spec in _field_specs(body):
            value = spec.get("value") if isinstance(spec, dict) else spec
            if isinstance(value, str) and len(value) > limits.max_regex_length:
                raise _regex_too_long(len(value), limits, f"on {field!r}")
            if isinstance(spec, dict):
                _check_param(
                    spec,
                    "max_determinized_states",
                    limits.max_determinized_states,
                    "ESTROM_QUERY_MAX_DETERMINIZED_STATES",
                    f"regexp on {field!r}",
                )
    elif kind == "wildcard":
        if limits.leading_wildcards:
            return
        for _field, spec in _field_specs(body):
            value = spec.get("value", spec.get("wildcard")) if isinstance(spec, dict) else spec
            if isinstance(value, str) and _starts_with_wildcard(value):
                raise _leading(value)
    elif kind in _EXPANDING:
        for field, spec in _field_specs(body):
            if isinstance(spec, dict):
                _check_param(
                    spec,
                    "max_expansions",
                    limits.max_expansions,
                    "ESTROM_QUERY_MAX_EXPANSIONS",
                    f"{kind} on {field!r}",
                )
    elif kind == "multi_match":
        _check_param(body, "max_expansions", limits.max_expansions, "ESTROM_QUERY_MAX_EXPANSIONS", kind)
    elif kind in ("query_string", "simple_query_string"):
        _check_param(body, "fuzzy_max_expansions", limits.max_expansions, "ESTROM_QUERY_MAX_EXPANSIONS", kind)
        if kind == "query_string":
            _check_param(
                body,
                "max_determinized_states",
                limits.max_determinized_states,
                "ESTROM_QUERY_MAX_DETERMINIZED_STATES",
                kind,
            )


def check_lucene_cost(text: str, root: tree.Item | None, limits: QueryLimits) -> None:
    """Refuse a query string whose regexes are too long or, if refused, whose terms start with a wildcard.

    ``root``: luqum's tree of ``text``, None when luqum could not parse it
    (then its phrases and regexes are found by quoting alone, and the engine
    parses the rest: the stored query tells it the limits).
    """
    if root is None:
        for quoted, run in segments(text):
            if quoted and run.startswith("/"):
                length = max(0, len(run) - 2)
                if length > limits.max_regex_length:
                    raise _regex_too_long(length, limits, "in the query string")
            elif not quoted and not limits.leading_wildcards:
                for found in _LEADING_WILDCARD.finditer(run):
                    if _starts_with_wildcard(found.group(1).rstrip(")")):
                        raise _leading(found.group(1))
        return
    stack: list[tree.Item] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, tree.Regex):
            length = max(0, len(node.value) - 2)
            if length > limits.max_regex_length:
                raise _regex_too_long(length, limits, "in the query string")
        elif (
            isinstance(node, tree.Word) and not limits.leading_wildcards and _starts_with_wildcard(node.value)
        ):
            raise _leading(node.value)
        stack.extend(node.children)


def _capped(value: Any, cap: int) -> int:
    number = _number(value)
    return cap if number is None or number > cap else int(number)


def cap_node(kind: str, body: dict[str, Any], limits: QueryLimits) -> dict[str, Any]:
    """``body`` of a stored ``kind`` node with the cost caps written in (a new dict when changed)."""
    if kind == "regexp":
        out = dict(body)
        for field, spec in _field_specs(body):
            spec = dict(spec) if isinstance(spec, dict) else {"value": spec}
            spec["max_determinized_states"] = _capped(
                spec.get("max_determinized_states"), limits.max_determinized_states
            )
            out[field] = spec
        return out
    if kind in _EXPANDING:
        out = dict(body)
        for field, spec in _field_specs(body):
            if kind == "match" and not (isinstance(spec, dict) and "fuzziness" in spec):
                continue  # no expansion without fuzziness
            key = "value" if kind == "fuzzy" else "query"
            spec = dict(spec) if isinstance(spec, dict) else {key: spec}
            spec["max_expansions"] = _capped(spec.get("max_expansions"), limits.max_expansions)
            out[field] = spec
        return out
    if kind == "multi_match" and (
        "fuzziness" in body or body.get("type") in ("phrase_prefix", "bool_prefix")
    ):
        return {**body, "max_expansions": _capped(body.get("max_expansions"), limits.max_expansions)}
    if kind == "simple_query_string":
        return {
            **body,
            "fuzzy_max_expansions": _capped(body.get("fuzzy_max_expansions"), limits.max_expansions),
        }
    if kind == "query_string":
        out = {
            **body,
            "fuzzy_max_expansions": _capped(body.get("fuzzy_max_expansions"), limits.max_expansions),
            "max_determinized_states": _capped(
                body.get("max_determinized_states"), limits.max_determinized_states
            ),
        }
        if not limits.leading_wildcards:
            out["allow_leading_wildcard"] = False
        return out
    return body
