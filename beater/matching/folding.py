"""A document percolated without the fields the percolator index does not map, their values kept for free text.

The percolator parses a percolated document against the shared index's
mapping, mapping fields it does not know on the fly (the dynamic templates
of ``beater/store/schema.py``). That on-the-fly mapping is never stored, but
it counts against the index's field limit all the same: in an index at its
limit, a document carrying one field the mapping lacks is refused ("Limit of
total fields ... has been exceeded"), and with it all its matches.

No stored query can name such a field: every field a query names is mapped
before the query is stored. So leaving the field out changes no match,
except for query strings without a field, which search ``estrom_all``, the
copy of every value: the values of the fields left out go there instead
(as dynamic mapping's ``copy_to`` would have put them), so ``timeout``
still matches a document whose new field holds it. A query naming fields by
a wildcard (``msg*:x``) does not see the values of the fields left out.

The percolator does this only for a document the engine refused, and only
against the index that refused it (``beater/matching/percolate.py``): a document
percolated in an index with room is parsed exactly as before.
"""

from __future__ import annotations

import json
from typing import Any

from beater.store.schema import ALL_FIELD


def fold_unmapped(doc: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the fields ``properties`` does not map, their values appended to ``estrom_all``.

    Returns ``doc`` itself when every field is mapped.
    """
    loose: list[str] = []
    out = _fold(doc, properties, loose)
    if out is doc:
        return doc
    if loose:
        kept = out.get(ALL_FIELD)
        earlier = [] if kept is None else (list(kept) if isinstance(kept, list) else [kept])
        out[ALL_FIELD] = earlier + loose
    return out


def _mapping_at(properties: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The mapping of ``key`` (dotted keys are paths, as the engine reads them) in ``properties``."""
    node: dict[str, Any] | None = None
    props: dict[str, Any] | None = properties
    for part in key.split("."):
        if not isinstance(props, dict):
            return None
        node = props.get(part)
        if not isinstance(node, dict):
            return None
        props = node.get("properties")
    return node


def _fold(obj: dict[str, Any], properties: dict[str, Any], loose: list[str]) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for key, value in obj.items():
        mapping = _mapping_at(properties, key)
        if mapping is None:
            if out is None:
                out = dict(obj)
            del out[key]
            _values(value, loose)
            continue
        sub = mapping.get("properties")
        if not isinstance(sub, dict):
            continue  # a mapped value (a shape that disagrees is ``document_shape``'s)
        folded = _fold_value(value, sub, loose)
        if folded is not value:
            if out is None:
                out = dict(obj)
            out[key] = folded
    return obj if out is None else out


def _fold_value(value: Any, properties: dict[str, Any], loose: list[str]) -> Any:
    if isinstance(value, dict):
        return _fold(value, properties, loose)
    if isinstance(value, list):
        items = [_fold_value(item, properties, loose) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _values(value: Any, into: list[str]) -> None:
    """Every scalar under ``value``, as text (what ``copy_to`` of a dynamic field would copy)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            into.append(item)
        else:
            into.append(json.dumps(item))
