"""A mapping's properties as data: read from the engine, merged, filled in, and what mapping more costs."""

from __future__ import annotations

from typing import Any

from beater.store.schema import count_fields, nest


def read_properties(es: Any, index: str) -> dict[str, Any]:
    """The properties of the index (or indices) ``index`` names, merged into one."""
    resp = es.indices.get_mapping(index=index, ignore_unavailable=True, allow_no_indices=True)
    merged: dict[str, Any] = {}
    for body in resp.values():
        merged.update(body.get("mappings", {}).get("properties", {}))
    return merged


def merge_properties(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fold ``new`` into ``into`` field by field: on a leaf both have, ``new`` wins."""
    for name, mapping in new.items():
        mine = into.get(name)
        if isinstance(mine, dict) and "properties" in mine and "properties" in mapping:
            into[name] = {
                **mine,
                "properties": merge_properties(dict(mine["properties"]), mapping["properties"]),
            }
        else:
            into[name] = mapping
    return into


def fill_properties(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fold ``new`` into ``into`` where ``into`` has no mapping yet (existing fields stay)."""
    for name, mapping in new.items():
        mine = into.get(name)
        if mine is None:
            into[name] = mapping
        elif "properties" in mine and "properties" in mapping:
            into[name] = {
                **mine,
                "properties": fill_properties(dict(mine["properties"]), mapping["properties"]),
            }
    return into


def mapping_cost(have: dict[str, Any], missing: dict[str, dict[str, Any]]) -> int:
    """How many fields (as the engine counts them) mapping ``missing`` (dotted names) adds to ``have``."""
    if not missing:
        return 0
    merged = merge_properties(dict(have), nest(missing))
    return count_fields(merged) - count_fields(have)
