"""A shared percolator index near its field limit is rebuilt with only the fields its queries name.

An engine field, once mapped, stays mapped: the fields of queries long gone
(an older beater mapped every field any query named, with no bound) keep
taking room from everyone. Near its limit, an index refuses new fields, and
so queries naming them; it is rebuilt as the next generation, with the
fields its stored queries name and nothing else, on start (once the beater
has joined) and at every lifecycle sweep:

1. ``<prefix>_shared-<n>`` (or its current generation) uses at least
   ``REPAIR_AT`` of ``index.mapping.total_fields.limit``, and the fields its
   stored queries name would use less than ``WORTH`` of it (else the room is
   in use, and rebuilding would win nothing: new queries go to the next
   shared index, ``beater/store/mappings.py``);
2. the next generation ``<prefix>_shared-<n>_g<k>`` is created with those
   fields (whoever creates it first does the rebuild: several beaters may
   try at once);
3. writes to the old index are blocked (a registration meanwhile fails as
   ``unavailable``, retry later; percolation reads it as before), its
   documents (queries, lifecycle state, signposts) are copied and the new
   index refreshed;
4. in one atomic alias change the old index is deleted and
   ``<prefix>_shared-<n>`` with every target's filtered alias points at the
   new one.

A rebuild that failed is rolled back (old index writable again, new one
deleted); one left half-done by a beater that died is found by the next
attempt (a generation with no alias older than ``STALE_MS``) and rolled back
the same way. Documents keep being percolated throughout, against the old
index until the alias change and the new one from then on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from beater.store.events import StoreEvents
from beater.store.field_limit import read_limits
from beater.store.properties import merge_properties
from beater.store.schema import (
    QUERY_FIELD,
    SHARED_SUFFIX,
    SID_FIELD,
    count_fields,
    generation,
    generation_index,
    percolator_index_body,
    prune,
    shared_number,
)
from beater.store.shared_indices import SharedIndices, current_indices
from common.engine import Engine, EngineRejected, EngineUnavailable
from common.query.fields import query_fields

log = Logger()

#: Share of its field limit from which a shared index is looked at for a rebuild.
REPAIR_AT = 0.9
#: Rebuilt only if the fields its queries name stay below this share of the limit.
WORTH = 0.5
#: A generation with no alias older than this is a rebuild that died: rolled back.
STALE_MS = 120_000
_PAGE = 1000
_CHUNK = 500
_UNMAPPED = re.compile(r"No field mapping can be found for the field with name \[([^\]]+)\]")


@dataclass
class Group:
    """One shared index as the engine holds it."""

    n: int
    #: the concrete index serving ``<prefix>_shared-<n>``
    concrete: str
    properties: dict[str, Any]
    limit: int
    settings: dict[str, Any]
    #: its aliases, with their filters (the targets' addresses)
    aliases: dict[str, Any]
    #: other concrete indices of this number (a rebuild under way, or left behind): name -> created, ms
    others: dict[str, int] = field(default_factory=dict)
    #: the highest generation seen of this number
    top: int = 0

    @property
    def blocked(self) -> bool:
        return str(self.settings.get("index.blocks.write", "false")).lower() == "true"


def _optional_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class IndexRepair:
    """Rebuilds of shared percolator indices near their field limit (see the module doc)."""

    def __init__(self, engine: Engine, indices: SharedIndices, events: StoreEvents) -> None:
        self.engine = engine
        self.indices = indices
        self.prefix = indices.prefix
        self.events = events
        self._running = False
        #: concrete index -> its field count when found full of live fields (logged once)
        self._kept: dict[str, int] = {}

    async def run(self) -> int:
        """Look at every shared index once; rebuild those near their limit. The number rebuilt."""
        if self._running:
            return 0
        self._running = True
        try:
            groups = await self.engine.run(self._read)
            rebuilt = 0
            for group in groups:
                if await self._one(group):
                    rebuilt += 1
            return rebuilt
        finally:
            self._running = False

    def _read(self, es: Any) -> list[Group]:
        pattern = self.prefix + SHARED_SUFFIX + "*"
        aliases = es.indices.get_alias(index=pattern, ignore_unavailable=True) or {}
        mappings = es.indices.get_mapping(index=pattern, ignore_unavailable=True, allow_no_indices=True) or {}
        settings = (
            es.indices.get_settings(
                index=pattern, flat_settings=True, ignore_unavailable=True, allow_no_indices=True
            )
            or {}
        )
        limits = read_limits(es, pattern)
        current = current_indices(self.prefix, aliases, mappings)
        groups: dict[int, Group] = {}
        for n, concrete in current.items():
            groups[n] = Group(
                n,
                concrete,
                dict((mappings.get(concrete) or {}).get("mappings", {}).get("properties", {})),
                limits.get(concrete, 1000),
                dict((settings.get(concrete) or {}).get("settings", {})),
                dict((aliases.get(concrete) or {}).get("aliases") or {}),
                top=generation(self.prefix, concrete),
            )
        for name in mappings:
            number = shared_number(self.prefix, name)
            if number is None or number not in groups or name == groups[number].concrete:
                continue
            created = _optional_int((settings.get(name) or {}).get("settings", {}).get("index.creation_date"))
            groups[number].others[name] = created or 0
            groups[number].top = max(groups[number].top, generation(self.prefix, name))
        return [groups[n] for n in sorted(groups)]

    async def _one(self, group: Group) -> bool:
        now = int(time.time() * 1000)
        for other, created in sorted(group.others.items()):
            if now - created < STALE_MS:
                return False  # another beater is rebuilding it
            log.warn("percolator_index.rebuild_abandoned", index=group.concrete, generation=other)
            await self._roll_back(group.concrete, other)
            return False
        if group.blocked:  # a rebuild that died after blocking it, its generation gone
            await self.engine.run(lambda es: self._unblock(es, group.concrete))
        used = count_fields(group.properties)
        if used < REPAIR_AT * group.limit:
            return False
        try:
            return await self._rebuild(group, used)
        except (EngineUnavailable, EngineRejected) as exc:
            log.warn("percolator_index.rebuild_failed", index=group.concrete, error=str(exc))
            self.events.inc("percolator_repairs_total", outcome="failed")
            return False

    async def _rebuild(self, group: Group, used: int) -> bool:
        named = await self._named_fields(group.concrete)
        base = percolator_index_body()["mappings"]["properties"]
        kept = merge_properties(dict(base), prune(group.properties, named))
        after = count_fields(kept)
        if after >= WORTH * group.limit:
            if self._kept.get(group.concrete) != used:
                self._kept[group.concrete] = used
                log.warn(
                    "percolator_index.full_of_live_fields",
                    index=group.concrete,
                    fields=used,
                    named=after,
                    limit=group.limit,
                    reason="its stored queries name these fields: new ones go to the next shared index",
                )
            return False
        new = generation_index(self.prefix, group.n, group.top + 1)
        body = percolator_index_body(
            _optional_int(group.settings.get("index.number_of_shards")),
            _optional_int(group.settings.get("index.number_of_replicas")),
            group.limit,
        )
        body["mappings"]["properties"] = kept

        def claim(es: Any) -> bool:
            resp = es.indices.create(index=new, body=body, ignore=400)
            return bool(resp.get("acknowledged"))  # 400: another beater claimed it first

        if not await self.engine.run(claim):
            return False
        log.info(
            "percolator_index.rebuilding", index=group.concrete, into=new, fields=used, limit=group.limit
        )
        try:
            await self.engine.run(
                lambda es: es.indices.put_settings(index=group.concrete, body={"index.blocks.write": True})
            )
            copied = await self._copy(group, new, named)
            await self.engine.run(lambda es: es.indices.refresh(index=new))
            await self.engine.run(lambda es: self._swap(es, group, new))
        except Exception:
            await self._roll_back(group.concrete, new)
            raise
        self.indices.rebuilt(group.n)
        self.events.inc("percolator_repairs_total", outcome="rebuilt")
        log.info(
            "percolator_index.rebuilt",
            index=group.concrete,
            into=new,
            queries=copied,
            fields_before=used,
            fields_after=after,
            limit=group.limit,
        )
        return True

    async def _pages(self, index: str, source: Any) -> list[dict[str, Any]]:
        """Every document of ``index``, paged on the sid (each page one engine call)."""
        hits: list[dict[str, Any]] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": {"match_all": {}},
                "size": _PAGE,
                "sort": [{SID_FIELD: "asc"}],
                "_source": source,
            }
            if after is not None:
                body["search_after"] = after

            def search(es: Any, body: dict[str, Any] = body) -> list[dict[str, Any]]:
                return list(es.search(index=index, body=body)["hits"]["hits"])

            page = await self.engine.run(search)
            hits.extend(page)
            if len(page) < _PAGE:
                return hits
            after = page[-1]["sort"]

    async def _named_fields(self, index: str) -> set[str]:
        named: set[str] = set()
        for hit in await self._pages(index, [QUERY_FIELD]):
            query = (hit.get("_source") or {}).get(QUERY_FIELD)
            if isinstance(query, dict):
                named |= query_fields(query)
        return named

    async def _copy(self, group: Group, new: str, named: set[str]) -> int:
        """Copy every document of the (blocked) old index; the fields of queries stored meanwhile too."""
        hits = await self._pages(group.concrete, True)
        more: set[str] = set()
        for hit in hits:
            query = (hit.get("_source") or {}).get(QUERY_FIELD)
            if isinstance(query, dict):
                more |= query_fields(query) - named
        if more:
            extra = prune(group.properties, more)
            if extra:
                await self.engine.run(
                    lambda es: es.indices.put_mapping(index=new, body={"properties": extra})
                )
        copied = 0
        for start in range(0, len(hits), _CHUNK):
            chunk = hits[start : start + _CHUNK]
            copied += await self._copy_chunk(group, new, chunk, retry=True)
        return copied

    async def _copy_chunk(self, group: Group, new: str, chunk: list[dict[str, Any]], retry: bool) -> int:
        lines: list[dict[str, Any]] = []
        for hit in chunk:
            lines += [{"index": {"_index": new, "_id": hit["_id"]}}, hit["_source"]]
        resp = await self.engine.run(lambda es: es.bulk(body=lines))
        failed: list[tuple[dict[str, Any], str]] = []
        for hit, item in zip(chunk, resp.get("items", []), strict=False):
            result = next(iter(item.values()))
            if not 200 <= int(result.get("status", 500)) < 300:
                failed.append((hit, str(result.get("error"))))
        if failed and retry:
            # A field the query names that the walk of its DSL missed: map it from the old index.
            unmapped = {m for _, reason in failed for m in _UNMAPPED.findall(reason)}
            extra = prune(group.properties, unmapped)
            if extra:
                await self.engine.run(
                    lambda es: es.indices.put_mapping(index=new, body={"properties": extra})
                )
                return (
                    len(chunk)
                    - len(failed)
                    + await self._copy_chunk(group, new, [hit for hit, _ in failed], retry=False)
                )
        for hit, reason in failed:
            log.warn("percolator_index.query_not_copied", index=group.concrete, sid=hit["_id"], reason=reason)
        return len(chunk) - len(failed)

    def _swap(self, es: Any, group: Group, new: str) -> None:
        base = self.indices.name(group.n)
        actions: list[dict[str, Any]] = [
            {"remove_index": {"index": group.concrete}},
            {"add": {"index": new, "alias": base}},
        ]
        for alias, spec in sorted(group.aliases.items()):
            if alias == base:
                continue
            add: dict[str, Any] = {"index": new, "alias": alias}
            if isinstance(spec, dict) and spec.get("filter"):
                add["filter"] = spec["filter"]
            actions.append({"add": add})
        es.indices.update_aliases(body={"actions": actions})

    @staticmethod
    def _unblock(es: Any, index: str) -> None:
        es.indices.put_settings(index=index, body={"index.blocks.write": None})

    async def _roll_back(self, old: str, new: str) -> None:
        def undo(es: Any) -> None:
            try:
                self._unblock(es, old)
            finally:
                es.indices.delete(index=new, ignore=404)

        try:
            await self.engine.run(undo)
        except (EngineUnavailable, EngineRejected) as exc:
            log.warn("percolator_index.rollback_failed", index=old, generation=new, error=str(exc))
