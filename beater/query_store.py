"""Registered queries, stored in Elasticsearch: one percolator index per document index.

Stored in the engine, queries survive a beater restart and are shared by any
number of beaters. A query document's id is its sid, so registering twice is
an idempotent overwrite.

The percolator index parses both the stored queries and the percolated
documents, so its mapping decides what matches. It is built so that:

* every string field is text with a ``keyword`` sub-field (as dynamic mapping
  would do in the document index), numbers and dates keep their types;
* every value is also copied into ``estrom_all``, the default field, so a
  query string without a field (``timeout``) searches the whole document, as
  it does against the document index;
* fields a query names are mapped *before* the query is stored (see
  ``fields.py``): from the document index's mapping when it has them,
  otherwise as text + keyword.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from beater.coalesce import Coalescer
from common.engine import Engine, EngineRejected, bulk_item_error
from common.query.fields import query_fields
from common.query.identity import canonicalize, sid_for, to_dsl
from common.query.limits import QueryLimits, validate_query

log = Logger()

QUERY_FIELD = "estrom_query"
ALL_FIELD = "estrom_all"
SID_FIELD = "estrom_sid"
META_FIELD = "estrom_meta"
# Lifecycle (beater/lifecycle.py): only active queries are percolated; an
# inactive one is removed once idle for the grace period.
ACTIVE_FIELD = "estrom_active"
LAST_ACTIVE_FIELD = "estrom_last_active"
IDLE_SINCE_FIELD = "estrom_idle_since"
#: Conditional writes per bulk request in a sweep: each request stays well
#: inside the engine timeout even with 10,000 queries to change.
_BULK_CHUNK = 500
_LIFECYCLE_MAPPING = {
    ACTIVE_FIELD: {"type": "boolean"},
    LAST_ACTIVE_FIELD: {"type": "date", "format": "epoch_millis"},
    IDLE_SINCE_FIELD: {"type": "date", "format": "epoch_millis"},
}

_TEXT_WITH_KEYWORD: dict[str, Any] = {
    "type": "text",
    "copy_to": ALL_FIELD,
    "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
}
# Field types that accept copy_to; others (objects, geo, ...) are copied as they are.
_COPYABLE = frozenset(
    {
        "text",
        "keyword",
        "long",
        "integer",
        "short",
        "byte",
        "double",
        "float",
        "half_float",
        "scaled_float",
        "unsigned_long",
        "date",
        "date_nanos",
        "boolean",
        "ip",
        "wildcard",
    }
)


def percolator_index_body() -> dict[str, Any]:
    """Settings and mapping of a new percolator index."""
    dynamic_templates = [
        {"strings": {"match_mapping_type": "string", "mapping": _TEXT_WITH_KEYWORD}},
        {"longs": {"match_mapping_type": "long", "mapping": {"type": "long", "copy_to": ALL_FIELD}}},
        {"doubles": {"match_mapping_type": "double", "mapping": {"type": "float", "copy_to": ALL_FIELD}}},
        {"booleans": {"match_mapping_type": "boolean", "mapping": {"type": "boolean", "copy_to": ALL_FIELD}}},
        {"dates": {"match_mapping_type": "date", "mapping": {"type": "date", "copy_to": ALL_FIELD}}},
    ]
    return {
        "settings": {
            "number_of_shards": 1,
            "auto_expand_replicas": "0-1",
            "index.query.default_field": ALL_FIELD,
            # A document whose number or date does not parse loses that field
            # for matching instead of failing the whole batch.
            "index.mapping.ignore_malformed": True,
            "index.mapping.total_fields.limit": 10000,
        },
        "mappings": {
            "dynamic_templates": dynamic_templates,
            "properties": {
                QUERY_FIELD: {"type": "percolator"},
                ALL_FIELD: {"type": "text"},
                SID_FIELD: {"type": "keyword"},
                META_FIELD: {"type": "object", "enabled": False},
                **_LIFECYCLE_MAPPING,
            },
        },
    }


def _lookup(properties: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The mapping of a dotted field path inside a ``properties`` tree."""
    node: dict[str, Any] | None = {"properties": properties}
    for part in path.split("."):
        if node is None:
            return None
        node = (node.get("properties") or {}).get(part)
    return node


def _properties(es: Any, index: str) -> dict[str, Any]:
    resp = es.indices.get_mapping(index=index, ignore_unavailable=True, allow_no_indices=True)
    merged: dict[str, Any] = {}
    for body in resp.values():
        merged.update(body.get("mappings", {}).get("properties", {}))
    return merged


def leaf_fields(properties: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the concrete fields of a mapping (nested objects are left out)."""
    found: set[str] = set()
    for name, mapping in properties.items():
        path = prefix + name
        if mapping.get("type") == "nested":
            continue
        if "properties" in mapping:
            found |= leaf_fields(mapping["properties"], path + ".")
        else:
            found.add(path)
    return found


def field_mapping_for(name: str, document_properties: dict[str, Any]) -> dict[str, Any]:
    """What to map ``name`` as in the percolator index."""
    known = _lookup(document_properties, name)
    if known and "properties" not in known:
        mapping = dict(known)
        if mapping.get("type", "object") in _COPYABLE:
            mapping["copy_to"] = ALL_FIELD
        return mapping
    return dict(_TEXT_WITH_KEYWORD)


class QueryStore:
    """Registration and lookup of percolator queries."""

    def __init__(self, engine: Engine, prefix: str, limits: QueryLimits | None = None) -> None:
        self.engine = engine
        self.prefix = prefix
        self.limits = limits or QueryLimits()
        self._known_indices: set[str] = set()
        self._creating: dict[str, list[Deferred[None]]] = {}
        self._writers: dict[str, Coalescer[tuple[str, dict[str, Any]], None]] = {}
        self._refreshers: dict[str, Coalescer[None, None]] = {}
        #: Fields known to be mapped in each percolator index (mappings only grow).
        self._mapped: dict[str, set[str]] = {}

    def percolator_index(self, index: str) -> str:
        return self.prefix + index

    def _writer(self, pindex: str) -> Coalescer[tuple[str, dict[str, Any]], None]:
        """Stores query documents of ``pindex``: concurrent registrations share one bulk and refresh."""
        writer = self._writers.get(pindex)
        if writer is None:

            async def store(docs: list[tuple[str, dict[str, Any]]]) -> list[Exception | None]:
                lines: list[dict[str, Any]] = []
                for sid, doc in docs:
                    lines += [{"index": {"_index": pindex, "_id": sid}}, doc]
                # refresh: every query takes part in the very next percolation.
                resp = await self.engine.run(lambda es: es.bulk(body=lines, refresh="true"))
                return [bulk_item_error(item) for item in resp["items"]]

            writer = self._writers[pindex] = Coalescer(store)
        return writer

    def _refresh(self, pindex: str) -> Deferred[None]:
        """Wait for a refresh of ``pindex`` that covers the writes done so far (shared by all callers)."""
        refresher = self._refreshers.get(pindex)
        if refresher is None:

            async def refresh(waiting: list[None]) -> list[Exception | None]:
                await self.engine.run(lambda es: es.indices.refresh(index=pindex))
                return [None] * len(waiting)

            refresher = self._refreshers[pindex] = Coalescer(refresh)
        return refresher.submit(None)

    async def ensure_percolator_index(self, index: str) -> str:
        name = self.percolator_index(index)
        if name in self._known_indices:
            return name
        waiters = self._creating.get(name)
        if waiters is not None:  # another registration is creating it: wait for that
            done: Deferred[None] = Deferred()
            waiters.append(done)
            await done
            return name
        self._creating[name] = waiters = []
        body = percolator_index_body()

        def create(es: Any) -> None:
            if not es.indices.exists(index=name):
                es.indices.create(index=name, body=body, ignore=400)  # 400: created meanwhile
            else:  # made by an older beater: make sure the lifecycle fields are mapped
                es.indices.put_mapping(index=name, body={"properties": _LIFECYCLE_MAPPING})

        try:
            await self.engine.run(create)
        except Exception:
            failure = Failure()
            del self._creating[name]
            for d in waiters:
                d.errback(failure)
            raise
        self._known_indices.add(name)
        del self._creating[name]
        for d in waiters:
            d.callback(None)
        return name

    async def _map_fields(self, index: str, fields: set[str]) -> None:
        """Add mappings for fields the percolator index does not know yet."""
        mapped = self._mapped.setdefault(self.percolator_index(index), set())
        if fields - mapped:
            await self.engine.run(lambda es: self._add_missing(es, index, fields, mapped))

    def _add_missing(
        self, es: Any, index: str, fields: set[str] | None, mapped: set[str] | None = None
    ) -> int:
        """Map ``fields`` (None: every field of the document index) missing in the percolator index.

        ``mapped`` collects the wanted fields the percolator index has afterwards.
        """
        pindex = self.percolator_index(index)
        have = _properties(es, pindex)
        docs = _properties(es, index) if es.indices.exists(index=index) else {}
        wanted = leaf_fields(docs) if fields is None else fields
        missing = sorted(f for f in wanted if _lookup(have, f) is None)
        found = mapped if mapped is not None else set()
        found.update(f for f in wanted if _lookup(have, f) is not None)
        if not missing:
            return 0
        props = {f: field_mapping_for(f, docs) for f in missing}
        try:
            es.indices.put_mapping(index=pindex, body={"properties": props})
            found.update(props)
            return len(props)
        except Exception:
            # A field mapped meanwhile (by a percolated dynamic template or
            # another beater) with another type: map the rest one by one.
            added = 0
            for name, mapping in props.items():
                try:
                    es.indices.put_mapping(index=pindex, body={"properties": {name: mapping}})
                    found.add(name)
                    added += 1
                except Exception as exc:
                    log.debug("mapping.skipped", field=name, error=str(exc))
            return added

    async def sync_mappings(self) -> int:
        """Bring fields that appeared in document indices into their percolator indices.

        Run by every lifecycle sweep, so a field Logstash's documents add to
        the index later has its real type in the percolator without a restart.
        """

        def sync(es: Any) -> int:
            names = es.indices.get_mapping(
                index=self.prefix + "*", ignore_unavailable=True, allow_no_indices=True
            )
            return sum(self._add_missing(es, name[len(self.prefix) :], None) for name in names)

        return await self.engine.run(sync)

    async def _validate(self, pindex: str, dsl: dict[str, Any]) -> None:
        """Refuse a query the engine cannot parse before anything is stored or mapped."""

        def validate(es: Any) -> dict[str, Any]:
            return es.indices.validate_query(index=pindex, body={"query": dsl}, explain=True)

        resp = await self.engine.run(validate)
        if not resp.get("valid", False):
            reasons = [e.get("error") for e in resp.get("explanations", []) if e.get("error")]
            reason = reasons[0] if reasons else str(resp.get("error") or "invalid query")
            raise EngineRejected(400, reason, "validation")

    async def register(self, index: str, query: object) -> str:
        """Store the query (idempotent) and return its sid; visible to the next percolation."""
        canonical = canonicalize(validate_query(query, self.limits))
        sid = sid_for(index, canonical)
        dsl = to_dsl(canonical)
        pindex = await self.ensure_percolator_index(index)
        await self._validate(pindex, dsl)
        await self._map_fields(index, query_fields(dsl))
        now = _now_ms()
        doc = {
            QUERY_FIELD: dsl,
            SID_FIELD: sid,
            META_FIELD: {"index": index, "query": canonical, "registered_at": now / 1000},
            # Active from registration on: its subscriber is about to come.
            ACTIVE_FIELD: True,
            LAST_ACTIVE_FIELD: now,
            IDLE_SINCE_FIELD: None,
        }
        await self._writer(pindex).submit((sid, doc))
        return sid

    async def describe(self, sid: str) -> dict[str, Any] | None:
        """``{"sid", "index", "query"}`` of a registered query, or None."""
        pattern = self.prefix + "*"

        def find(es: Any) -> dict[str, Any]:
            return es.search(
                index=pattern,
                body={"query": {"ids": {"values": [sid]}}, "_source": [META_FIELD], "size": 1},
                ignore_unavailable=True,
                allow_no_indices=True,
            )

        resp = await self.engine.run(find)
        hits = resp.get("hits", {}).get("hits", [])
        if not hits:
            return None
        # A read: it does not keep a query alive (registering or subscribing does).
        meta = hits[0]["_source"][META_FIELD]
        return {"sid": sid, "index": meta["index"], "query": meta["query"]}

    # --- lifecycle -------------------------------------------------------------------

    async def _update(self, pindex: str, sid: str, doc: dict[str, Any], refresh: bool = True) -> None:
        await self.engine.run(lambda es: es.update(index=pindex, id=sid, body={"doc": doc}, ignore=404))
        if refresh:
            await self._refresh(pindex)

    async def touch(self, sid: str) -> bool:
        """Mark a query active now (a subscription appeared); False if unknown."""

        def find(es: Any) -> dict[str, Any]:
            return es.search(
                index=self.prefix + "*",
                body={"query": {"ids": {"values": [sid]}}, "_source": [ACTIVE_FIELD], "size": 1},
                ignore_unavailable=True,
                allow_no_indices=True,
            )

        hits = (await self.engine.run(find))["hits"]["hits"]
        if not hits:
            return False
        # Already active (the usual case right after registering): percolation
        # sees no change, so skip the costly refresh. The write still bumps the
        # seq_no, which is what makes a racing sweep's conditional write skip it.
        refresh = not hits[0].get("_source", {}).get(ACTIVE_FIELD, False)
        await self._update(hits[0]["_index"], sid, _active_doc(_now_ms()), refresh=refresh)
        return True

    async def _scan(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Every query document matching ``query``, with its seq_no for conditional writes."""
        found: list[dict[str, Any]] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": query,
                "_source": False,
                "seq_no_primary_term": True,
                "size": 10_000,
                "sort": [{SID_FIELD: "asc"}],
            }
            if after is not None:
                body["search_after"] = after

            def search(es: Any, body: dict[str, Any] = body) -> dict[str, Any]:
                return es.search(
                    index=self.prefix + "*", body=body, ignore_unavailable=True, allow_no_indices=True
                )

            hits = (await self.engine.run(search))["hits"]["hits"]
            found.extend(hits)
            if len(hits) < 10_000:
                return found
            after = hits[-1]["sort"]

    async def _apply(self, hits: list[dict[str, Any]], action: str, doc: dict[str, Any] | None) -> int:
        """Conditional bulk update/delete: a document changed since the scan is left alone.

        That is what keeps several beaters consistent: a registration or
        subscription that lands between our scan and our write bumps the
        document's seq_no, so our write is refused as a conflict and skipped.
        """
        done = 0
        for start in range(0, len(hits), _BULK_CHUNK):
            done += await self._apply_chunk(hits[start : start + _BULK_CHUNK], action, doc)
        if done:
            # One refresh for the whole sweep step: percolation sees it at once.
            await self.engine.run(lambda es: es.indices.refresh(index=self.prefix + "*"))
        return done

    async def _apply_chunk(self, hits: list[dict[str, Any]], action: str, doc: dict[str, Any] | None) -> int:
        lines: list[dict[str, Any]] = []
        for hit in hits:
            meta = {
                "_index": hit["_index"],
                "_id": hit["_id"],
                "if_seq_no": hit["_seq_no"],
                "if_primary_term": hit["_primary_term"],
            }
            lines.append({action: meta})
            if doc is not None:
                lines.append({"doc": doc})

        def bulk(es: Any) -> dict[str, Any]:
            return es.bulk(body=lines)

        resp = await self.engine.run(bulk)
        done = 0
        for item in resp.get("items", []):
            result = next(iter(item.values()))
            if 200 <= int(result.get("status", 500)) < 300:
                done += 1
        return done

    async def deactivate_unsubscribed(
        self, subscribed: set[str], cutoff_ms: int, now_ms: int, prefixes: frozenset[str] = frozenset()
    ) -> int:
        """Active queries without a subscriber, quiet since ``cutoff_ms``, stop being percolated.

        ``prefixes``: sid prefixes a pattern subscription covers (``docs-for-ab``).
        """
        listened = [{"prefix": {SID_FIELD: p}} for p in sorted(prefixes)]
        if subscribed:
            listened.append({"ids": {"values": sorted(subscribed)}})
        query = {
            "bool": {
                "filter": [
                    {"term": {ACTIVE_FIELD: True}},
                    {"range": {LAST_ACTIVE_FIELD: {"lt": cutoff_ms}}},
                ],
                "must_not": listened,
            }
        }
        return await self._apply(
            await self._scan(query), "update", {ACTIVE_FIELD: False, IDLE_SINCE_FIELD: now_ms}
        )

    async def activate_subscribed(
        self, subscribed: set[str], now_ms: int, prefixes: frozenset[str] = frozenset()
    ) -> int:
        """Inactive queries that have a subscriber again are percolated again."""
        listened = [{"prefix": {SID_FIELD: p}} for p in sorted(prefixes)]
        if subscribed:
            listened.append({"ids": {"values": sorted(subscribed)}})
        if not listened:
            return 0
        query = {
            "bool": {
                "filter": [{"term": {ACTIVE_FIELD: False}}],
                "should": listened,
                "minimum_should_match": 1,
            }
        }
        return await self._apply(await self._scan(query), "update", _active_doc(now_ms))

    async def collect_idle(self, idle_before_ms: int) -> int:
        """Delete queries inactive since before ``idle_before_ms``."""
        query = {
            "bool": {
                "filter": [
                    {"term": {ACTIVE_FIELD: False}},
                    {"range": {IDLE_SINCE_FIELD: {"lt": idle_before_ms}}},
                ]
            }
        }
        return await self._apply(await self._scan(query), "delete", None)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _active_doc(now_ms: int) -> dict[str, Any]:
    return {ACTIVE_FIELD: True, LAST_ACTIVE_FIELD: now_ms, IDLE_SINCE_FIELD: None}


def is_invalid_query(exc: EngineRejected) -> bool:
    """Whether an engine refusal at registration is the query's fault."""
    return exc.status == 400
