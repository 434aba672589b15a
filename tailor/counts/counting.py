"""Live counts, the pure part: windows, field values, top-k frames.

A window is ``[start, start + every)`` with ``start`` a multiple of
``every`` since the epoch, so that every viewer of a sid, and the engine's
date histogram for ``since=``, cut time at the same instants. A frame is
``{"t": <window start, RFC 3339>, "total": n, "by": {value: count, ...}}``:
the top ``k`` values (count descending, then value ascending, as the
engine's terms aggregation orders them), the rest summed as ``_other``,
documents without the field as ``_missing``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

OTHER = "_other"
MISSING = "_missing"
#: Distinct values one window tracks; beyond, a value's hits go to ``_other``
#: (a ``by=`` on an id-like field must not grow memory without bound).
MAX_VALUES = 10_000


def window_start(t: float, every: float) -> float:
    """The start of the window holding instant ``t`` (seconds since the epoch)."""
    return window_ms(t, every) / 1000


def window_ms(t: float, every: float) -> int:
    """``window_start`` in whole milliseconds: what windows are keyed by."""
    ms = round(every * 1000)
    return math.floor(round(t * 1000, 3) / ms) * ms


def rfc3339(t: float) -> str:
    """``2026-12-01T11:09:00Z``, with milliseconds only when the instant has them."""
    ms = round(t * 1000)
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def value_key(value: Any) -> str | None:
    """A field value as a count key, spelled as the engine spells its terms keys."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return str(value)


def field_values(source: Any, path: str) -> set[str]:
    """The distinct values at a dotted ``path`` of a document, as the engine reads them.

    ``a.b`` is ``{"a": {"b": ...}}`` or ``{"a.b": ...}`` (or a mix); arrays,
    also arrays of objects on the way, contribute each element. A document
    counts once per distinct value, as in a terms aggregation.
    """
    found: set[str] = set()
    _walk(source, path.split("."), found)
    return found


def _walk(node: Any, parts: list[str], found: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, parts, found)
        return
    if not parts:
        key = value_key(node)
        if key is not None:
            found.add(key)
        return
    if not isinstance(node, dict):
        return
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if name in node:
            _walk(node[name], parts[i:], found)


class WindowCounts:
    """The hits of one window: a total, and per value of the ``by`` field if any."""

    __slots__ = ("by", "missing", "overflow", "total", "values")

    def __init__(self, by: str | None) -> None:
        self.by = by
        self.total = 0
        self.values: Counter[str] = Counter()
        self.missing = 0
        self.overflow = 0

    def add(self, source: Any) -> None:
        self.total += 1
        if self.by is None:
            return
        keys = field_values(source, self.by)
        if not keys:
            self.missing += 1
            return
        values = self.values
        for key in keys:
            if key in values or len(values) < MAX_VALUES:
                values[key] += 1
            else:
                self.overflow += 1

    def add_all(self, sources: Iterable[Any]) -> None:
        for source in sources:
            self.add(source)

    def merge(self, other: WindowCounts) -> None:
        self.total += other.total
        self.missing += other.missing
        self.overflow += other.overflow
        self.values.update(other.values)

    def seed(self, total: int, top: Mapping[str, int], other: int, missing: int) -> None:
        """Counts the engine computed (a ``since=`` bucket), merged in."""
        self.total += total
        self.values.update(top)
        self.overflow += other
        self.missing += missing


def frame(start: float, counts: WindowCounts, k: int) -> dict[str, Any]:
    """The frame of one window, its values cut to the top ``k``."""
    by: dict[str, int] = {}
    if counts.by is not None:
        ranked = sorted(counts.values.items(), key=lambda kv: (-kv[1], kv[0]))
        by = dict(ranked[:k])
        other = sum(n for _, n in ranked[k:]) + counts.overflow
        if other:
            by[OTHER] = other
        if counts.missing:
            by[MISSING] = counts.missing
    return {"t": rfc3339(start), "total": counts.total, "by": by}
