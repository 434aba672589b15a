"""Documents made to fit a percolator index's mapping where their shape disagrees with it.

Every target's queries share percolator indices (``beater/store/mappings.py``),
so one index's mapping holds the fields of every target's documents. Where
two targets' documents disagree on a field's *shape* (Logstash's ``host``
is a string in one pipeline and ECS's ``{"name": ...}`` object in the next),
the engine refuses to parse the document whose shape differs from the
mapping, and with it every match of that document. The percolator sees only
its own copy of a document: dropping the values that cannot be parsed there
loses matching on those values alone, as the engine's ``ignore_malformed``
does for a value of the wrong type, while the document published is the
original, whole.
"""

from __future__ import annotations

from typing import Any

_OBJECT_TYPES = {"object", "nested"}


def _is_object_mapping(mapping: dict[str, Any]) -> bool:
    return "properties" in mapping or mapping.get("type") in _OBJECT_TYPES


def conform(doc: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the values whose shape (object or not) disagrees with ``properties``.

    Returns ``doc`` itself when nothing disagrees; fields the mapping does
    not know are kept (the engine maps them as dynamic mapping would).
    """
    out: dict[str, Any] | None = None
    for key, value in doc.items():
        mapping = properties.get(key)
        if not isinstance(mapping, dict):
            continue
        fitted = _fit_value(value, mapping)
        if fitted is value:
            continue
        if out is None:
            out = dict(doc)
        if fitted is _DROP:
            del out[key]
        else:
            out[key] = fitted
    return doc if out is None else out


_DROP: Any = object()


def _fit_value(value: Any, mapping: dict[str, Any]) -> Any:
    if isinstance(value, list):
        items = [_fit_value(item, mapping) for item in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        kept = [item for item in items if item is not _DROP]
        return kept if kept else _DROP
    if _is_object_mapping(mapping):
        if isinstance(value, dict):
            return conform(value, mapping.get("properties") or {})
        return _DROP if value is not None else value
    return _DROP if isinstance(value, dict) else value
