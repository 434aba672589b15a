"""Reading an ingest body: one object, a JSON array of objects, or NDJSON.

Senders such as Logstash drop a whole batch on any 4xx, so one bad item must
never cost the good ones: items that are not JSON objects are listed in
``rejected`` (0-based position of the item, or of the line for NDJSON) and the
rest goes on, as the Elasticsearch bulk API does. Only a body from which no
document at all can be read is an error, and so is one with more items than
``max_docs`` (413: the sender should split it). Items are counted while they
are read, so such a body is refused after ``max_docs`` of them, not once
millions are built: NDJSON lines are found one at a time, and an array over
``FAST_MAX`` bytes is read item by item. A document nested deeper than
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
the two paths). orjson is kept to texts up to ``FAST_MAX``: on a text it
refuses, it allocates some twelve times the text before raising (63 MB of
NDJSON sent as ``application/json`` would cost 750 MB), and a whole array is
built before its items can be counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from common.fast_json import JSONDecodeError, exact_for_orjson, fast_dumps_bytes, fast_loads
from common.json_shape import inspect

NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
JSON_TYPES = frozenset({"application/json", "text/json"})

#: JSON's own whitespace (what ``json.loads`` skips between values).
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
#: A non-blank line of text, from its first non-space character to its end.
_CONTENT_LINE = re.compile(r"\S[^\n]*")
_NON_SPACE = re.compile(r"\S")

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


#: Largest text orjson reads (a body, or an NDJSON line): what it may cost is then bounded,
#: at some 350,000 empty objects (25 MB) of an array counted after reading, or 12 MB for an
#: error. Larger ones take the standard library's path, arrays item by item.
FAST_MAX = 1024 * 1024


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


def media_type_problem(content_type: str | None) -> str | None:
    """Why an ingest request's ``Content-Type`` is refused (HTTP 415), or None.

    Only JSON types are read. A missing type is refused with the rest: an
    HTML form on any web site may POST ``text/plain``, form-encoded or
    multipart bodies cross-origin without a CORS preflight, and a browser
    sends them with its user's network position; a JSON type needs the
    preflight, which the beater never grants.
    """
    kind = media_type(content_type)
    if kind in NDJSON_TYPES or kind in JSON_TYPES or kind.endswith("+json"):
        return None
    given = f"Content-Type {kind!r} is not accepted" if kind else "Content-Type is missing"
    return (
        f"{given}: send application/json (an object or an array of objects) or "
        "application/x-ndjson (one object per line)"
    )


def document_problem(doc: Any, max_depth: int) -> str | None:
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


def fast_document_problem(doc: Any, max_depth: int) -> str | None:
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


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines of ``text`` with their 0-based line number, one at a time.

    What ``enumerate(text.split("\n"))`` gives less its blank lines, without
    the list of every line: runs of blank lines are skipped in C.
    """
    number, searched = 0, 0
    for match in _CONTENT_LINE.finditer(text):
        start = match.start()
        number += text.count("\n", searched, start)
        yield number, text[text.rfind("\n", searched, start) + 1 : match.end()]
        searched = match.end()


def _parse_ndjson(text: str, max_depth: int, max_docs: int, fast: bool = False) -> IngestBody:
    body = IngestBody()
    count = 0
    for position, line in _content_lines(text):
        count += 1
        _too_many(count, max_docs)
        if fast and len(line) <= FAST_MAX:
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


def _skip_space(text: str, pos: int) -> int:
    """The first position at or after ``pos`` that is not JSON whitespace."""
    return _JSON_SPACE.match(text, pos).end()  # type: ignore[union-attr]  # "*" always matches


def _array_items(text: str, max_docs: int) -> list[Any]:
    """The items of the JSON array ``text``, read one at a time; TooManyDocuments past ``max_docs``.

    ``json.loads`` of the whole text would build every item first. Each item
    is read by the standard library's scanner; the separators between them
    are checked as ``json.loads`` checks them, with its error messages.
    """
    decoder = json.JSONDecoder()
    items: list[Any] = []
    pos = _skip_space(text, _skip_space(text, 0) + 1)  # past "["
    if not text.startswith("]", pos):
        while True:
            try:
                item, pos = decoder.raw_decode(text, pos)
            except RecursionError:
                raise ValueError("nested too deeply for the JSON parser") from None
            _too_many(len(items) + 1, max_docs)
            items.append(item)
            pos = _skip_space(text, pos)
            if text.startswith("]", pos):
                break
            if not text.startswith(",", pos):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = _skip_space(text, pos + 1)
    end = _skip_space(text, pos + 1)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return items


def _several_lines(text: str) -> bool:
    """``"\n" in text.strip()``, without copying the text."""
    first = _NON_SPACE.search(text)
    newline = text.find("\n", first.start()) if first else -1
    return newline >= 0 and _NON_SPACE.search(text, newline) is not None


def parse_ingest_body(
    raw: bytes,
    content_type: str | None,
    max_depth: int,
    max_docs: int,
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
    if _NON_SPACE.search(text) is None:
        raise UnreadableBody("body is empty")

    fast = fast and exact_for_orjson(raw)
    if is_ndjson:
        body = _parse_ndjson(text, max_depth, max_docs, fast)
    else:
        large = len(raw) > FAST_MAX
        read_fast = False
        try:
            if large and text.startswith("[", _skip_space(text, 0)):
                value = _array_items(text, max_docs)
            elif fast and not large:
                try:
                    value = fast_loads(text)
                    read_fast = True
                except JSONDecodeError:
                    value = _loads(text)  # why it fails, or what orjson refuses to read
            else:
                value = _loads(text)
        except TooManyDocuments:
            raise
        except ValueError as exc:
            # A JSON body that fails as a whole may still be NDJSON sent with
            # the generic type (curl --data-binary @file.ndjson -H ...json).
            body = _parse_ndjson(text, max_depth, max_docs, fast) if _several_lines(text) else IngestBody()
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
