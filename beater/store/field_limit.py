"""A shared index's field limit: the engine's setting, read per index, and its error for a mapping past it.

One limit (``index.mapping.total_fields.limit``) for every target of a
shared index: what may take it is bounded where queries are placed
(``beater/store/mappings.py``), and an index past it anyway is rebuilt
(``beater/store/repair.py``).
"""

from __future__ import annotations

from typing import Any

#: The engine setting every shared index's fields count against.
FIELD_LIMIT_SETTING = "index.mapping.total_fields.limit"
#: Its default where an index does not set it.
ENGINE_FIELD_LIMIT = 1000


def field_limit_error(exc: BaseException) -> bool:
    """Whether an engine error is the total-fields limit of a mapping."""
    info = getattr(exc, "info", None)
    return "Limit of total fields" in f"{exc} {info}"


def limit_of(body: dict[str, Any]) -> int:
    """The total-fields limit in one index's ``get_settings(flat_settings, include_defaults)`` answer."""
    for part in ("settings", "defaults"):
        value = (body.get(part) or {}).get(FIELD_LIMIT_SETTING)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
    return ENGINE_FIELD_LIMIT


def read_limits(es: Any, index: str) -> dict[str, int]:
    """Concrete index -> its total-fields limit, for the indices ``index`` names (a pattern too)."""
    resp = es.indices.get_settings(
        index=index,
        name=FIELD_LIMIT_SETTING,
        flat_settings=True,
        include_defaults=True,
        ignore_unavailable=True,
        allow_no_indices=True,
    )
    return {name: limit_of(body) for name, body in (resp or {}).items()}
