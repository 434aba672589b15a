"""Which documents of a bulk request the engine stored: request actions paired with response items.

A bulk body is NDJSON: an action line (``index``, ``create``, ``update``,
``delete``), then a source line for all but ``delete``. The engine answers
one item per action, in order, with the ``_index`` and ``_id`` it used and a
status. Documents stored by ``index`` or ``create`` (a 2xx item) are the
ones estrom percolates and publishes; ``update`` and ``delete`` publish
nothing (an update's stored result is not in the request).

Both sides are read incrementally: request lines from the spooled body,
response items with ijson from the spooled answer, so a 100 MB bulk is never
held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson

#: Actions that store the document of their source line.
STORING = frozenset({"index", "create"})
#: Actions followed by a source line.
WITH_SOURCE = frozenset({"index", "create", "update"})


class Unpaired(ValueError):
    """Request and response do not line up (a filter_path, or an answer that is no bulk answer)."""


@dataclass
class StoredDocument:
    """One document the engine reported stored."""

    position: int
    index: str
    doc_id: str | None
    source: dict[str, Any]
    #: The ``_index`` of the action line (None: the path's target), when it is not the one stored
    #: in (an alias or a data stream name; the engine reports the index behind it).
    written_as: str | None = None


def _lines(body: IO[bytes]) -> Iterator[bytes]:
    for line in body:
        stripped = line.strip()
        if stripped:
            yield stripped


def actions(body: IO[bytes]) -> Iterator[tuple[str, str | None, bytes | None]]:
    """``(action, its _index or None, source line or None)`` for each action of a bulk body."""
    lines = _lines(body)
    for line in lines:
        try:
            meta = json.loads(line)
        except ValueError as exc:
            raise Unpaired(f"action line is not JSON: {exc}") from None
        if not isinstance(meta, dict) or len(meta) != 1:
            raise Unpaired("action line is not one action")
        action, spec = next(iter(meta.items()))
        index = spec.get("_index") if isinstance(spec, dict) else None
        source = next(lines, None) if action in WITH_SOURCE else None
        yield action, None if index is None else str(index), source


def top_members(answer: IO[bytes]) -> tuple[dict[str, Any], bool]:
    """A bulk answer's scalar top members (``took``, ``errors``) and whether it has ``items``.

    Read up to the items only, and rewound: the items are read after, one at a time.
    """
    answer.seek(0)
    top: dict[str, Any] = {}
    has_items = False
    for prefix, event, value in ijson.parse(answer, use_float=True):
        if prefix == "items" and event == "start_array":
            has_items = True
            break
        if prefix and "." not in prefix and event not in ("start_map", "start_array", "map_key"):
            top[prefix] = value
    answer.seek(0)
    return top, has_items


def response_items(answer: IO[bytes]) -> Iterator[dict[str, Any]]:
    """The items of a bulk answer, one at a time."""
    yield from ijson.items(answer, "items.item", use_float=True)


def stored_documents(
    actions_: Iterable[tuple[str, str | None, bytes | None]],
    items: Iterable[dict[str, Any]],
    default_index: str | None = None,
) -> Iterator[StoredDocument]:
    """The documents the engine stored by ``index``/``create``, with the ``_index``/``_id`` it reported.

    ``default_index`` is the target of ``POST /<target>/_bulk``: the name an
    action without ``_index`` was written to.
    """
    pairs = zip(actions_, items, strict=False)
    position = -1
    for position, ((action, requested, source), item) in enumerate(pairs):
        result = item.get(action) if isinstance(item, dict) else None
        if not isinstance(result, dict):
            raise Unpaired(f"item {position} does not answer action {action!r}")
        if action not in STORING or source is None:
            continue
        status = result.get("status")
        if not isinstance(status, int) or not 200 <= status < 300 or "_index" not in result:
            continue
        doc = json.loads(source)
        if isinstance(doc, dict):
            doc_id = result.get("_id")
            stored_in = str(result["_index"])
            written_as = requested if requested is not None else default_index
            yield StoredDocument(
                position,
                stored_in,
                None if doc_id is None else str(doc_id),
                doc,
                None if written_as == stored_in else written_as,
            )
