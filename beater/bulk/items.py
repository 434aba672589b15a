"""Which documents of a bulk request the engine stored: request actions paired with response items.

A bulk body is NDJSON: an action line (``index``, ``create``, ``update``,
``delete``), then a source line for all but ``delete``. The engine answers
one item per action, in order, with the ``_index`` and ``_id`` it used, a
status and a ``result``. A document is stored when its item is a 2xx whose
result is ``created`` or ``updated``: ``noop`` is what the engine answers
for a document an ingest pipeline's ``drop`` discarded (or an update that
changed nothing), and nothing was stored.

What was stored is, in the common case, the action's source line. An
``update`` stores a document the request does not hold: the beater asks
the engine to return it (``get._source``, see ``screen``), and it is
taken from the answer. Where an ingest pipeline may have changed the
document, the source line is not what was stored either: the document is
marked ``pipelined`` and read back from the engine (``stored_sources``).

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
#: Item results that mean a document was stored.
STORED_RESULTS = frozenset({"created", "updated"})
#: The pipeline name that turns the index's default pipeline off.
NO_PIPELINE = "_none"


class Unpaired(ValueError):
    """Request and response do not line up (an answer that is no bulk answer for this request)."""


@dataclass(frozen=True)
class Action:
    """One action of a bulk request, as far as pairing needs it."""

    name: str
    #: its ``_index`` (None: the path's target)
    index: str | None
    #: its ``pipeline`` (None: the request's, if any)
    pipeline: str | None
    source: bytes | None


@dataclass
class StoredDocument:
    """One document the engine reported stored."""

    position: int
    index: str
    doc_id: str | None
    #: what was stored, None where the answer does not hold it (to be read back from the engine)
    source: dict[str, Any] | None
    #: The ``_index`` of the action line (None: the path's target), when it is not the one stored
    #: in (an alias or a data stream name; the engine reports the index behind it).
    written_as: str | None = None
    #: the action that stored it
    action: str = "index"
    #: the pipeline the request named for it (None: none named; ``_none``: the default turned off)
    pipeline: str | None = None
    #: the engine's sequence number and primary term for this write, to read back exactly it
    seq_no: int | None = None
    primary_term: int | None = None


def compact(value: Any) -> bytes:
    """JSON as the engine writes it, without spaces: an answer estrom rewrites keeps the engine's bytes."""
    return json.dumps(value, separators=(",", ":")).encode()


def _lines(body: IO[bytes]) -> Iterator[bytes]:
    for line in body:
        stripped = line.strip()
        if stripped:
            yield stripped


def actions(body: IO[bytes]) -> Iterator[Action]:
    """Each action of a bulk body, with its source line."""
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
        pipeline = spec.get("pipeline") if isinstance(spec, dict) else None
        source = next(lines, None) if action in WITH_SOURCE else None
        yield Action(
            action,
            None if index is None else str(index),
            None if pipeline is None else str(pipeline),
            source,
        )


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


def item_result(item: Any) -> tuple[str, dict[str, Any]] | None:
    """``(action, its result object)`` of one answer item, or None for an item that is none."""
    if not isinstance(item, dict) or len(item) != 1:
        return None
    action, result = next(iter(item.items()))
    return (action, result) if isinstance(result, dict) else None


def stores(result: dict[str, Any]) -> bool:
    """Whether an item's result says a document was stored (2xx, created or updated)."""
    status = result.get("status")
    if not isinstance(status, int) or not 200 <= status < 300 or "_index" not in result:
        return False
    # An engine that gives no ``result`` (none known here) is taken at its status.
    return result.get("result", "created") in STORED_RESULTS


def stored_count(answer: IO[bytes]) -> int:
    """How many items of a bulk answer stored a document (what an unpaired answer leaves unpublished)."""
    answer.seek(0)
    try:
        return sum(
            1
            for item in response_items(answer)
            if (found := item_result(item)) is not None and found[0] != "delete" and stores(found[1])
        )
    except (ValueError, ijson.JSONError):
        return 0
    finally:
        answer.seek(0)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def stored_documents(
    actions_: Iterable[Action],
    items: Iterable[dict[str, Any]],
    default_index: str | None = None,
    default_pipeline: str | None = None,
) -> Iterator[StoredDocument]:
    """The documents the engine stored, with the ``_index``/``_id`` it reported.

    ``default_index`` is the target of ``POST /<target>/_bulk`` (the name an
    action without ``_index`` was written to), ``default_pipeline`` the
    request's ``pipeline`` parameter.
    """
    pairs = zip(actions_, items, strict=False)
    for position, (action, item) in enumerate(pairs):
        found = item_result(item)
        if found is None or found[0] != action.name:
            raise Unpaired(f"item {position} does not answer action {action.name!r}")
        result = found[1]
        if action.name not in WITH_SOURCE or action.source is None or not stores(result):
            continue
        if action.name in STORING:
            doc = json.loads(action.source)
            if not isinstance(doc, dict):
                continue  # the engine stores objects only: this item cannot be what it says
        else:
            got = result.get("get")
            doc = got.get("_source") if isinstance(got, dict) else None
            doc = doc if isinstance(doc, dict) else None
        doc_id = result.get("_id")
        stored_in = str(result["_index"])
        written_as = action.index if action.index is not None else default_index
        yield StoredDocument(
            position,
            stored_in,
            None if doc_id is None else str(doc_id),
            doc,
            None if written_as == stored_in else written_as,
            action.name,
            action.pipeline if action.pipeline is not None else default_pipeline,
            _int(result.get("_seq_no")),
            _int(result.get("_primary_term")),
        )
