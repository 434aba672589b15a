"""What the engine stored, where the request does not say: read back by ``_mget``, write for write.

An ingest pipeline may change a document on its way in (Filebeat's modules
parse, rename and redact; a ``remove`` takes out an ``ssn``): what a
subscriber must see is the document as stored, not the line the shipper
sent. A pipeline runs when the request names one (the ``pipeline``
parameter, or an action's ``pipeline``), or when the index's settings name
a ``index.default_pipeline`` (unless the request says ``_none``) or an
``index.final_pipeline``. Which indices have one is asked of the engine per
index and kept ``ttl`` seconds (``IndexPipelines``): a bulk into indices
without pipelines costs no request beyond that one look every ``ttl``.

The documents that went through a pipeline, and updates whose answer did
not carry the stored document, are read back with one ``_mget`` per chunk
(realtime: no refresh needed). Each is matched to its own write by
``_seq_no`` and ``_primary_term``: a document written again, or deleted,
between the bulk and the read is not published from this write (the later
write publishes its own); it is counted as unpublished, with its cause.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from twisted.internet.interfaces import IReactorTime

from beater.bulk.items import NO_PIPELINE, StoredDocument
from beater.writers.kept_answers import KeptAnswers

#: ``get(path) -> (status, body)``: one GET to the engine.
Get = Callable[[str], Awaitable[tuple[int, bytes]]]
#: ``post(path, payload) -> (status, body)``: one POST of a JSON body to the engine.
Post = Callable[[str, Any], Awaitable[tuple[int, bytes]]]
#: Indices remembered at most; past this the cache starts afresh.
CACHE_MAX = 10_000
#: The settings read: both name a pipeline that runs on every document written to the index.
SETTINGS = ("index.default_pipeline", "index.final_pipeline")


class ReadBackFailed(RuntimeError):
    """The engine did not answer a settings or ``_mget`` request: the documents stay unpublished."""


@dataclass(frozen=True)
class Pipelines:
    """The pipelines an index's settings name (None: none)."""

    default: str | None = None
    final: str | None = None


def _named(value: Any) -> str | None:
    return None if value in (None, "", NO_PIPELINE) else str(value)


def pipelines_of(answer: Any) -> dict[str, Pipelines]:
    """``index -> Pipelines`` from a ``GET /<indices>/_settings/...?flat_settings=true`` answer."""
    out: dict[str, Pipelines] = {}
    if not isinstance(answer, dict):
        return out
    for index, body in answer.items():
        settings = body.get("settings") if isinstance(body, dict) else None
        if not isinstance(settings, dict):
            settings = {}
        out[index] = Pipelines(_named(settings.get(SETTINGS[0])), _named(settings.get(SETTINGS[1])))
    return out


def runs_pipeline(named: str | None, index: Pipelines | None) -> bool:
    """Whether a write into an index with ``index``'s settings, naming ``named``, runs a pipeline."""
    if index is not None and index.final is not None:
        return True
    if named is not None:
        return named != NO_PIPELINE
    return index is not None and index.default is not None


class IndexPipelines:
    """Which indices run a pipeline on every write, asked of the engine and kept ``ttl`` seconds."""

    def __init__(self, get: Get, clock: IReactorTime, ttl: float) -> None:
        self.get = get
        self.kept: KeptAnswers[Pipelines] = KeptAnswers(self._ask, Pipelines(), clock, ttl, CACHE_MAX)

    async def _ask(self, indices: list[str]) -> dict[str, Pipelines]:
        path = (
            "/"
            + quote(",".join(indices), safe=",")
            + "/_settings/"
            + ",".join(SETTINGS)
            + "?flat_settings=true&ignore_unavailable=true&expand_wildcards=all"
        )
        status, body = await self.get(path)
        if status not in (200, 404):
            raise ReadBackFailed(f"the engine answered {status} to GET {path}")
        return pipelines_of(json.loads(body or b"{}"))

    async def of(self, indices: Iterable[str]) -> dict[str, Pipelines]:
        """``index -> Pipelines`` for ``indices``; one request for those not known or stale."""
        return await self.kept.of(indices)


@dataclass
class ReadBack:
    """The documents read back: those found as written, and those not, by cause."""

    found: list[StoredDocument]
    #: cause -> how many
    missing: dict[str, int]


async def read_back(post: Post, docs: list[StoredDocument]) -> ReadBack:
    """Each document as the engine stored it by its own write; one ``_mget`` for all of them."""
    missing: dict[str, int] = {}
    if any(d.doc_id is None for d in docs):
        missing["unpaired"] = sum(1 for d in docs if d.doc_id is None)
        docs = [d for d in docs if d.doc_id is not None]
    if not docs:
        return ReadBack([], missing)
    wanted = [{"_index": d.index, "_id": d.doc_id} for d in docs]
    status, body = await post("/_mget?realtime=true", {"docs": wanted})
    if status != 200:
        raise ReadBackFailed(f"the engine answered {status} to _mget")
    answer = json.loads(body)
    got = answer.get("docs") if isinstance(answer, dict) else None
    if not isinstance(got, list) or len(got) != len(docs):
        raise ReadBackFailed("the engine's _mget answer does not hold one document per request")
    found: list[StoredDocument] = []
    for doc, stored in zip(docs, got, strict=True):
        cause = _mismatch(doc, stored)
        if cause is not None:
            missing[cause] = missing.get(cause, 0) + 1
            continue
        doc.source = stored["_source"]
        found.append(doc)
    return ReadBack(found, missing)


def _mismatch(doc: StoredDocument, stored: Any) -> str | None:
    """Why ``stored`` is not the document ``doc``'s write stored (None: it is)."""
    if not isinstance(stored, dict) or not stored.get("found"):
        return "gone_before_read"
    if doc.seq_no is not None and (
        stored.get("_seq_no") != doc.seq_no or stored.get("_primary_term") != doc.primary_term
    ):
        return "rewritten_before_read"
    if not isinstance(stored.get("_source"), dict):
        return "source_not_stored"
    return None
