"""A bulk request's items screened against its writer before the engine sees them.

Each action's target (its ``_index``, else the path's ``/<target>/_bulk``)
is checked with the writer's gate. Items the writer may not write are taken
out of the body the engine gets, and put back into the answer at their
place as the engine's own per-item refusal (``403``,
``security_exception``); the rest of the request goes through. A request
whose every item is refused never reaches the engine.

The bulk API is no read path either, yet an ``update`` stores a document
the request does not hold, which estrom publishes: every update action is
sent asking for it (``"_source": true`` on its action line; what the
shipper asked, on either line or the URL, is taken out), and the answer's
``get`` is read for publishing, then taken out of every update item
(``rewritten_answer``), so no shipper's answer carries a stored document.

The common case, every item allowed and no update, forwards the spooled
body untouched: one pass over the action lines, no copy.
"""

from __future__ import annotations

import json
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode

import ijson

from beater.bulk.items import compact, top_members
from common.contract import ENGINE_SECURITY_EXCEPTION

#: Rewritten bodies stay in memory up to this size, then go to a temporary file.
SPOOL_IN_MEMORY = 1024 * 1024
#: Actions followed by a source line.
WITH_SOURCE = frozenset({"index", "create", "update"})
#: URL parameters that make an update's answer carry the stored document.
SOURCE_PARAMS = frozenset(
    {"_source", "_source_includes", "_source_excludes", "_source_include", "_source_exclude"}
)


class UnreadableBulk(ValueError):
    """An action line that is not one JSON action: the request is refused whole (400)."""


@dataclass
class Refused:
    """One item taken out of the request, answered with the engine's refusal shape."""

    position: int
    action: str
    index: str | None
    doc_id: Any
    reason: str

    def item(self) -> dict[str, Any]:
        """The answer's item for it, as the engine answers an item its security refuses."""
        return {
            self.action: {
                "_index": self.index,
                "_id": self.doc_id,
                "status": ENGINE_SECURITY_EXCEPTION.status,
                "error": {"type": ENGINE_SECURITY_EXCEPTION.code, "reason": self.reason},
            }
        }


@dataclass
class Screened:
    """What the engine gets, and what was taken out."""

    #: the body to forward (the original, rewound, when nothing was taken out)
    body: IO[bytes]
    refused: list[Refused] = field(default_factory=list)
    #: actions in the request as sent
    actions: int = 0
    #: whether ``body`` is a rewritten copy
    rewritten: bool = False
    #: whether update actions were sent asking for the stored document (``get``, not the shipper's)
    updates: bool = False

    @property
    def all_refused(self) -> bool:
        return self.actions > 0 and len(self.refused) == self.actions


def _lines(body: IO[bytes]) -> Iterator[bytes]:
    for line in body:
        if line.strip():
            yield line


def _action(line: bytes, position: int) -> tuple[str, dict[str, Any]]:
    try:
        meta = json.loads(line)
    except ValueError as exc:
        raise UnreadableBulk(f"bulk action line {position} is not JSON: {exc}") from None
    if not isinstance(meta, dict) or len(meta) != 1:
        raise UnreadableBulk(f"bulk line {position} is not one action")
    action, spec = next(iter(meta.items()))
    if not isinstance(spec, dict):
        raise UnreadableBulk(f"bulk action {position} ({action}) has no metadata object")
    return str(action), spec


def _asking_for_the_document(line: bytes) -> bytes:
    """An update's action line asking the engine for the stored document, whatever it asked before."""
    value = json.loads(line)
    value["update"]["_source"] = True
    return compact(value) + b"\n"


def _without_source(line: bytes) -> bytes:
    """An update's source line without the shipper's ``_source`` (the action line's is estrom's)."""
    value = json.loads(line)
    if isinstance(value, dict):
        value.pop("_source", None)
    return compact(value) + b"\n"


@dataclass
class Scan:
    """One pass over a bulk body: the distinct names its items write, and which item writes which."""

    names: list[str]
    #: per item, the index in ``names`` of what it writes (``NO_NAME``: none given, the engine decides)
    item_names: array[int]
    #: whether any action is an update (sent rewritten, see the module's docstring)
    updates: bool


NO_NAME = 0xFFFFFFFF


def scan(body: IO[bytes], default_index: str | None) -> Scan:
    """Read every action line of ``body`` once; UnreadableBulk for one that cannot be read."""
    body.seek(0)
    names: dict[str, int] = {}
    item_names = array("I")
    updates = False
    lines = _lines(body)
    for position, line in enumerate(lines):
        action, spec = _action(line, position)
        if action in WITH_SOURCE:
            next(lines, None)
        name = spec.get("_index", default_index)
        item_names.append(NO_NAME if name is None else names.setdefault(str(name), len(names)))
        updates = updates or action == "update"
    body.seek(0)
    return Scan(list(names), item_names, updates)


def screen(body: IO[bytes], scanned: Scan, refusals: dict[str, str]) -> Screened:
    """The body without the items whose name ``refusals`` refuses (name -> reason), updates rewritten.

    The body itself, untouched, when nothing is refused and there is no update.
    """
    refused_names = {i: refusals[n] for i, n in enumerate(scanned.names) if n in refusals}
    count = len(scanned.item_names)
    taken = [p for p, i in enumerate(scanned.item_names) if i in refused_names]
    if not taken and not scanned.updates:
        body.seek(0)
        return Screened(body, [], count)
    refused: list[Refused] = []
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    body.seek(0)
    lines = _lines(body)
    for position, line in enumerate(lines):
        action, spec = _action(line, position)
        source = next(lines, None) if action in WITH_SOURCE else None
        name_at = scanned.item_names[position]
        if name_at in refused_names:
            name = scanned.names[name_at]
            refused.append(Refused(position, action, name, spec.get("_id"), refused_names[name_at]))
            continue
        if action == "update":
            line = _asking_for_the_document(line)
            if source is not None and b'"_source"' in source:
                source = _without_source(source)
        out.write(line if line.endswith(b"\n") else line + b"\n")
        if source is not None:
            out.write(source if source.endswith(b"\n") else source + b"\n")
    out.seek(0)
    body.seek(0)
    return Screened(out, refused, count, rewritten=True, updates=scanned.updates)


def without_source_params(uri: bytes) -> bytes:
    """The request URI without the parameters that make update answers carry documents."""
    path, sep, query = uri.partition(b"?")
    if not sep:
        return uri
    kept = [
        (k, v)
        for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        if k not in SOURCE_PARAMS
    ]
    return path + (b"?" + urlencode(kept).encode("latin-1") if kept else b"")


def refused_only_answer(refused: list[Refused]) -> bytes:
    """The answer to a bulk request whose every item was refused: the engine never saw it."""
    return compact({"took": 0, "errors": True, "items": [r.item() for r in refused]})


def rewritten_answer(answer: IO[bytes], refused: list[Refused], total: int) -> IO[bytes]:
    """The engine's answer with the refused items put back at their places, and no update's ``get``.

    ``errors`` is true when an item was refused. Read and written item by
    item (ijson), so a large answer is never held whole.
    """
    top, _ = top_members(answer)
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    head = {k: v for k, v in top.items() if k != "errors" or not refused}
    out.write(compact(head)[:-1])
    out.write(b"," if head else b"")
    out.write(b'"errors":true,"items":[' if refused else b'"items":[')
    pending = iter(sorted(refused, key=lambda r: r.position))
    nxt = next(pending, None)
    items = ijson.items(answer, "items.item", use_float=True)
    for position in range(total):
        if position:
            out.write(b",")
        if nxt is not None and nxt.position == position:
            out.write(compact(nxt.item()))
            nxt = next(pending, None)
            continue
        item = next(items, None)
        update = item.get("update") if isinstance(item, dict) else None
        if isinstance(update, dict):
            update.pop("get", None)
        out.write(compact(item))
    out.write(b"]}")
    out.seek(0)
    return out
