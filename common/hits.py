"""The hit: what subscribers receive for each matching document."""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]
Hit = dict[str, Any]


def split_id(doc: Doc) -> tuple[Any, Doc]:
    """Separate a top-level ``_id`` (the sender's document id) from the source.

    Returns ``(id_or_None, source)``; the input is not modified.
    """
    if "_id" not in doc:
        return None, doc
    source = {k: v for k, v in doc.items() if k != "_id"}
    return doc["_id"], source


def make_hit(index: str, source: Doc, doc_id: Any = None) -> Hit:
    hit: Hit = {"_index": index, "_source": source}
    if doc_id is not None:
        hit["_id"] = doc_id
    return hit
