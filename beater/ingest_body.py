"""Reading an ingest body: one object, a JSON array of objects, or NDJSON.

Senders such as Logstash drop a whole batch on any 4xx, so one bad item must
never cost the good ones: items that are not JSON objects are listed in
``rejected`` (0-based position of the item, or of the line for NDJSON) and the
rest goes on, as the Elasticsearch bulk API does. Only a body from which no
document at all can be read is an error, and so is one with more items than
``max_docs`` (413: the sender should split it). A document nested deeper than
``max_depth`` (Elasticsearch's own mapping depth limit is 20 objects), or one
holding what the engine cannot read back as JSON (an unpaired surrogate, a
number out of double range), is rejected alone.

This runs for every ingested document, so it has a fast path
(``common/fast_json.py``): orjson reads the body, and orjson refuses exactly
the values the engine cannot read back (unpaired surrogates, non-finite
numbers) as well as nesting past 1,024 levels, so once it has read a body
only the top-level field names and the nesting limit are left to check, and
the nesting limit only for a document with more brackets than the limit.
Anything orjson refuses, and any body it would read differently (an integer
past 64 bits, which it reads as a float), takes the standard library's path,
with the same outcome for every item (tests/unit/test_ingest_body.py compares
the two paths).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from common.fast_json import JSONDecodeError, exact_for_orjson, fast_dumps_bytes, fast_loads
from common.json_shape import inspect

NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
JSON_TYPES = frozenset({"application/json", "text/json"})

#: Top-level keys Elasticsearch reserves for metadata; a document carrying one
#: cannot be percolated, so it is rejected alone instead of failing its batch.
_METADATA_FIELDS = frozenset(
    {
        "_index",
        "_type",
        "_source",
        "_routing",
        "_field_names",
        "_ignored",
        "_seq_no",
        "_version",
        "_primary_term",
        "_nested_path",
        "_doc_count",
        "_data_stream_timestamp",
        "_tier",
        "_size",
    }
)


#: Default nesting limit of one document (objects and arrays; the document is 1).
MAX_DEPTH = 20
#: Default number of items one request may hold.
MAX_DOCS = 10_000


class TooManyDocuments(ValueError):
    """The request holds more items than one request may (HTTP 413)."""


class UnreadableBody(ValueError):
    """No document at all can be read from the body (HTTP 400)."""

    def __init__(self, reason: str, rejected: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected or []


@dataclass
class IngestBody:
    """Documents with their position in the request, and what was skipped."""

    docs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def media_type(content_type: str | None) -> str:
    """``"application/json; charset=utf-8"`` to ``"application/json"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def document_problem(doc: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why an item cannot be ingested as a document, or None."""
    if not isinstance(doc, dict):
        kind = "array" if isinstance(doc, list) else "null" if doc is None else type(doc).__name__
        return f"item is not a JSON object but {kind}"
    for key in doc:
        if key in _METADATA_FIELDS:
            return f"field [{key}] is a metadata field and cannot be part of a document"
        if key == "" or key.strip(".") == "":
            return f"field name {key!r} is not a valid field name"
    depth, problem = inspect(doc, max_depth)
    if depth > max_depth:
        return f"document is nested deeper than the limit of {max_depth} levels (ESTROM_INGEST_MAX_DEPTH)"
    return problem


class _ReadAgain(Exception):
    """A document orjson read is nested too deep to judge on its text: read the body the old way."""


def fast_document_problem(doc: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """``document_problem`` of an item orjson has read: no value problem can be left in it.

    The rest is decided on the document's JSON text, in C: its nesting depth
    is at most its number of ``{`` and ``[``; a field name of dots only starts
    with ``".`` in it, an empty one is ``"":``. Only a document where one of
    these may be (or with a metadata field) is walked by ``document_problem``.
    Raises _ReadAgain for a document past orjson's writing limit (254 levels):
    the standard library's parser, whose own limit (about 1,000 levels,
    less the caller's stack) may refuse the whole body, decides that body.
    """
    try:
        text = fast_dumps_bytes(doc)
    except TypeError:
        raise _ReadAgain from None
    if type(doc) is not dict:
        return document_problem(doc, max_depth)
    if (
        text.count(b"{") + text.count(b"[") > max_depth
        or b'".' in text
        or b'"":' in text
        or not _METADATA_FIELDS.isdisjoint(doc)
    ):
        return document_problem(doc, max_depth)
    return None


def _add(body: IngestBody, position: int, item: Any, max_depth: int, fast: bool = False) -> None:
    problem = fast_document_problem(item, max_depth) if fast else document_problem(item, max_depth)
    if problem:
        body.rejected.append({"position": position, "reason": problem})
    else:
        body.docs.append((position, item))


def _loads(text: str) -> Any:
    """``json.loads`` whose nesting failure is a ValueError like any other parse error."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply for the JSON parser") from None


def _too_many(count: int, max_docs: int) -> None:
    if count > max_docs:
        raise TooManyDocuments(
            f"request holds more than {max_docs} items (ESTROM_INGEST_MAX_DOCS); split it into smaller requests"
        )


def _parse_ndjson(text: str, max_depth: int, max_docs: int, fast: bool = False) -> IngestBody:
    body = IngestBody()
    count = 0
    for position, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        count += 1
        _too_many(count, max_docs)
        if fast:
            try:
                _add(body, position, fast_loads(line), max_depth, fast=True)
                continue
            except JSONDecodeError:
                pass  # the standard library says why, or reads what orjson refuses
        try:
            item = _loads(line)
        except ValueError as exc:
            body.rejected.append({"position": position, "reason": f"line is not JSON: {exc}"})
            continue
        _add(body, position, item, max_depth)
    return body


def parse_ingest_body(
    raw: bytes,
    content_type: str | None,
    max_depth: int = MAX_DEPTH,
    max_docs: int = MAX_DOCS,
    *,
    fast: bool = True,
) -> IngestBody:
    """Read the documents of one ingest request.

    Raises UnreadableBody if there are none, TooManyDocuments past ``max_docs`` items.
    ``fast=False`` takes the standard library's path only (the reference the fast path is
    tested against).
    """
    try:
        return _parse_body(raw, content_type, max_depth, max_docs, fast)
    except _ReadAgain:
        return _parse_body(raw, content_type, max_depth, max_docs, False)


def _parse_body(
    raw: bytes, content_type: str | None, max_depth: int, max_docs: int, fast: bool
) -> IngestBody:
    kind = media_type(content_type)
    is_ndjson = kind in NDJSON_TYPES
    is_json = kind in JSON_TYPES or kind.endswith("+json") or kind == ""
    if not (is_ndjson or is_json):
        raise UnreadableBody(
            f"unsupported content type {kind!r}: send application/json (an object or an array "
            "of objects) or application/x-ndjson (one object per line)"
        )
    try:
        # A byte-order mark is accepted, as the engine accepts it.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableBody(f"body is not UTF-8: {exc}") from None
    if not text.strip():
        raise UnreadableBody("body is empty")

    fast = fast and exact_for_orjson(raw)
    if is_ndjson:
        body = _parse_ndjson(text, max_depth, max_docs, fast)
    else:
        read_fast = False
        try:
            if fast:
                try:
                    value = fast_loads(text)
                    read_fast = True
                except JSONDecodeError:
                    value = _loads(text)  # why it fails, or what orjson refuses to read
            else:
                value = _loads(text)
        except ValueError as exc:
            # A JSON body that fails as a whole may still be NDJSON sent with
            # the generic type (curl --data-binary @file.ndjson -H ...json).
            body = (
                _parse_ndjson(text, max_depth, max_docs, fast) if text.strip().count("\n") else IngestBody()
            )
            if not body.docs:
                raise UnreadableBody(f"body is not JSON: {exc}") from None
        else:
            body = IngestBody()
            if isinstance(value, list):
                _too_many(len(value), max_docs)
                for position, item in enumerate(value):
                    _add(body, position, item, max_depth, read_fast)
            elif isinstance(value, dict):
                _add(body, 0, value, max_depth, read_fast)
            else:
                raise UnreadableBody("body must be a JSON object or an array of JSON objects")

    if not body.docs and body.rejected:
        raise UnreadableBody("no item of the body is a document", body.rejected)
    return body
