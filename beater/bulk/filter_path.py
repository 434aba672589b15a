"""The engine's ``filter_path``, applied by estrom to an answer the engine gave in full.

Logstash's ``elasticsearch`` output and libbeat (Filebeat) send every bulk
with ``filter_path=errors,items.*.error,items.*.status``: an answer without
the items' ``_index`` and ``_id``, which estrom needs to pair each stored
document with its action. So the request goes to the engine without
``filter_path``, estrom reads the whole answer, and the shipper gets it
filtered as the engine would have: comma-separated dotted paths, ``*`` in a
name, ``**`` for any number of names, ``-`` for exclusions (applied first,
then the inclusions); arrays are transparent; objects and arrays left empty
are left out, and an answer nothing matches is ``{}``.

A bulk answer is filtered item by item (ijson), never held whole.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode

import ijson

from beater.bulk.items import compact, top_members

SPOOL_IN_MEMORY = 1024 * 1024
#: What a path left out returns (``None`` is a JSON value).
_MISSING = object()

Path = tuple[str, ...]


def _name_matches(pattern: str, name: str) -> bool:
    """A filter name: ``*`` matches any run of characters, the rest literally."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == name
    if not name.startswith(parts[0]) or not name.endswith(parts[-1]):
        return False
    at = len(parts[0])
    end = len(name) - len(parts[-1])
    for part in parts[1:-1]:
        found = name.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return at <= end


def _advance(paths: Iterable[Path], name: str) -> list[Path]:
    """The rest of each path after it meets ``name`` (``()``: the path is matched whole)."""
    out: list[Path] = []
    for path in paths:
        head, rest = path[0], path[1:]
        if head == "**":
            out.append(path)  # ``**`` takes this name and maybe more
            out.extend(_advance([rest], name) if rest else [()])
        elif _name_matches(head, name):
            out.append(rest)
    return out


def _include(value: Any, paths: list[Path]) -> Any:
    if any(not p for p in paths):
        return value
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, child in value.items():
            nxt = _advance(paths, key)
            if nxt:
                filtered = _include(child, nxt)
                if filtered is not _MISSING:
                    kept[key] = filtered
        return kept or _MISSING
    if isinstance(value, list):
        items = [f for f in (_include(v, paths) for v in value) if f is not _MISSING]
        return items or _MISSING
    return _MISSING


def _exclude(value: Any, paths: list[Path]) -> Any:
    if any(not p for p in paths):
        return _MISSING
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, child in value.items():
            nxt = _advance(paths, key)
            filtered = _exclude(child, nxt) if nxt else child
            if filtered is not _MISSING:
                kept[key] = filtered
        return kept
    if isinstance(value, list):
        return [f for f in (_exclude(v, paths) for v in value) if f is not _MISSING]
    return value


class FilterPath:
    """A parsed ``filter_path``: inclusions and ``-`` exclusions."""

    def __init__(self, spec: str) -> None:
        self.includes: list[Path] = []
        self.excludes: list[Path] = []
        for raw in spec.split(","):
            raw = raw.strip()
            if not raw:
                continue
            target = self.excludes if raw.startswith("-") else self.includes
            target.append(tuple(raw.lstrip("-").split(".")))

    def apply(self, value: Any) -> Any:
        """``value`` filtered (``{}`` when nothing is left)."""
        if self.excludes:
            value = _exclude(value, self.excludes)
        if self.includes and value is not _MISSING:
            value = _include(value, self.includes)
        return {} if value is _MISSING else value

    def below(self, name: str) -> FilterPath:
        """The filter as it applies inside a member ``name`` (arrays being transparent)."""
        inner = FilterPath("")
        inner.includes = _advance(self.includes, name)
        inner.excludes = _advance(self.excludes, name)
        return inner

    def keeps(self, name: str) -> bool:
        """Whether anything of member ``name`` can be kept."""
        if () in _advance(self.excludes, name):
            return False
        return not self.includes or bool(_advance(self.includes, name))


def split_filter_path(uri: bytes) -> tuple[bytes, FilterPath | None]:
    """The URI without ``filter_path``, and the filter it asked for (None: none)."""
    path, sep, query = uri.partition(b"?")
    if not sep:
        return uri, None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    specs = [v for k, v in pairs if k == "filter_path"]
    if not specs:
        return uri, None
    kept = [(k, v) for k, v in pairs if k != "filter_path"]
    rest = path + (b"?" + urlencode(kept).encode("latin-1") if kept else b"")
    return rest, FilterPath(",".join(specs))


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)


def filtered_answer(answer: IO[bytes], wanted: FilterPath) -> IO[bytes]:
    """A JSON answer filtered as the engine would have; a bulk answer's items one at a time."""
    top, has_items = top_members(answer)
    out = _spool()
    if not has_items:
        out.write(compact(wanted.apply(json.load(answer))))
        out.seek(0)
        return out
    head = wanted.apply(top) if top else {}
    head = head if isinstance(head, dict) else {}
    inner = wanted.below("items")
    filtering = bool(inner.includes or inner.excludes)
    # The engine's order: the top members (took, errors), then the items.
    out.write(b"{" + b",".join(compact(k) + b":" + compact(v) for k, v in head.items()))
    written = 0
    if wanted.keeps("items"):
        for item in ijson.items(answer, "items.item", use_float=True):
            kept = inner.apply(item) if filtering else item
            if inner.includes and kept == {}:
                continue  # nothing of this item matched: the engine writes nothing of it
            out.write((b"," if head else b"") + b'"items":[' if not written else b",")
            out.write(compact(kept))
            written += 1
    out.write(b"]}" if written else b"}")
    out.seek(0)
    return out
