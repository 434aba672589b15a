"""Percolator indices exist and map the fields their queries and documents use.

The percolator parses a query once, when it is stored, against the mapping
of that moment (``common/query/fields.py`` says why): so an index is created
with its schema before any query is written, fields a query names are mapped
before it is stored, and every lifecycle sweep brings in fields that appeared
in the covered indices meanwhile, with their real types. One percolator
index serves one read target; its fields come from what the target covers:
the existing indices' mappings and the index templates that would apply to
names it matches (``document_properties`` says what wins on a conflict).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from beater.store.schema import (
    LIFECYCLE_MAPPING,
    field_mapping_for,
    leaf_fields,
    lookup,
    percolator_index_body,
)
from beater.store.targets import TARGET_META
from common.engine import Engine
from common.query.targets import InvalidTarget, Target, globs_overlap, parse_target, percolator_suffix

log = Logger()


def _properties(es: Any, index: str) -> dict[str, Any]:
    resp = es.indices.get_mapping(index=index, ignore_unavailable=True, allow_no_indices=True)
    merged: dict[str, Any] = {}
    for body in resp.values():
        merged.update(body.get("mappings", {}).get("properties", {}))
    return merged


def merge_properties(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fold ``new`` into ``into`` field by field: on a leaf both have, ``new`` wins."""
    for name, mapping in new.items():
        mine = into.get(name)
        if isinstance(mine, dict) and "properties" in mine and "properties" in mapping:
            into[name] = {
                **mine,
                "properties": merge_properties(dict(mine["properties"]), mapping["properties"]),
            }
        else:
            into[name] = mapping
    return into


def fill_properties(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fold ``new`` into ``into`` where ``into`` has no mapping yet (existing fields stay)."""
    for name, mapping in new.items():
        mine = into.get(name)
        if mine is None:
            into[name] = mapping
        elif "properties" in mine and "properties" in mapping:
            into[name] = {
                **mine,
                "properties": fill_properties(dict(mine["properties"]), mapping["properties"]),
            }
    return into


@dataclass
class Templates:
    """The engine's index templates, read once per mapping pass."""

    #: (priority, index patterns, properties), composable templates with their components
    composable: list[tuple[int, list[str], dict[str, Any]]]
    #: (order, index patterns, properties), legacy ``_template``
    legacy: list[tuple[int, list[str], dict[str, Any]]]

    def properties_for(self, patterns: tuple[str, ...]) -> dict[str, Any]:
        """Fields of the templates that would apply to names the patterns match.

        Legacy templates lowest, by ``order``; then composable ones by
        priority, the highest winning a field both map, as for a new index.
        """

        def applies(index_patterns: list[str]) -> bool:
            return any(globs_overlap(p, ip) for p in patterns for ip in index_patterns)

        merged: dict[str, Any] = {}
        for group in (self.legacy, self.composable):
            for _rank, index_patterns, props in sorted(group, key=lambda t: t[0]):
                if applies(index_patterns):
                    merge_properties(merged, props)
        return merged


def _read_templates(es: Any) -> Templates:
    def props(mappings: Any) -> dict[str, Any]:
        if not isinstance(mappings, dict):
            return {}
        if "properties" not in mappings and len(mappings) == 1:  # legacy typed mapping {"_doc": {...}}
            mappings = next(iter(mappings.values())) or {}
        return dict(mappings.get("properties") or {})

    composable: list[tuple[int, list[str], dict[str, Any]]] = []
    legacy: list[tuple[int, list[str], dict[str, Any]]] = []
    try:
        entries = es.indices.get_index_template().get("index_templates", [])
    except Exception as exc:
        log.debug("templates.no_index_templates", error=str(exc))
        entries = []
    components: dict[str, dict[str, Any]] = {}
    if any(e["index_template"].get("composed_of") for e in entries):
        try:
            components = {
                c["name"]: props(c["component_template"].get("template", {}).get("mappings"))
                for c in es.cluster.get_component_template().get("component_templates", [])
            }
        except Exception as exc:
            log.debug("templates.no_components", error=str(exc))
    try:
        for entry in entries:
            spec = entry["index_template"]
            merged: dict[str, Any] = {}
            for name in spec.get("composed_of", []):
                merge_properties(merged, components.get(name, {}))
            merge_properties(merged, props(spec.get("template", {}).get("mappings")))
            composable.append((int(spec.get("priority") or 0), list(spec.get("index_patterns", [])), merged))
    except Exception as exc:
        log.debug("templates.no_index_templates", error=str(exc))
    try:
        for spec in es.indices.get_template().values():
            legacy.append(
                (
                    int(spec.get("order") or 0),
                    list(spec.get("index_patterns", [])),
                    props(spec.get("mappings")),
                )
            )
    except Exception as exc:
        log.debug("templates.no_legacy_templates", error=str(exc))
    return Templates(composable, legacy)


class PercolatorIndices:
    """Creation and mapping of the percolator indices, one per read target."""

    def __init__(
        self, engine: Engine, prefix: str, shards: int | None = None, replicas: int | None = None
    ) -> None:
        self.engine = engine
        self.prefix = prefix
        #: primary shards and replicas of new percolator indices (None: the engine's default)
        self.shards = shards
        self.replicas = replicas
        self._known_indices: set[str] = set()
        self._creating: dict[str, list[Deferred[None]]] = {}
        #: Fields known to be mapped in each percolator index (mappings only grow).
        self._mapped: dict[str, set[str]] = {}

    def percolator_index(self, target: Target) -> str:
        return self.prefix + percolator_suffix(target)

    def target_of(self, pindex: str, meta: dict[str, Any] | None) -> Target | None:
        """The target a percolator index serves: from its ``_meta``, else from its name."""
        text = (meta or {}).get(TARGET_META)
        if not isinstance(text, str):
            text = pindex[len(self.prefix) :]
        try:
            return parse_target(text)
        except InvalidTarget:
            return None  # made by hand, or by _bulk with no _meta: nothing to map it from

    def forget(self, pindex: str) -> None:
        """``pindex`` is gone (deleted under us): the next use creates it again, properly."""
        if pindex in self._known_indices:
            log.warn("percolator_index.vanished", index=pindex)
        self._known_indices.discard(pindex)
        self._mapped.pop(pindex, None)

    def create_now(self, es: Any, target: Target) -> None:
        """Create the percolator index of ``target`` with its schema (on an engine thread)."""
        name = self.percolator_index(target)
        body = percolator_index_body(self.shards, self.replicas)
        body["mappings"]["_meta"] = {TARGET_META: target.canonical}
        if not es.indices.exists(index=name):
            es.indices.create(index=name, body=body, ignore=400)  # 400: created meanwhile
        else:  # made by an older beater: make sure the lifecycle fields and the target are there
            es.indices.put_mapping(
                index=name, body={"_meta": body["mappings"]["_meta"], "properties": LIFECYCLE_MAPPING}
            )

    async def ensure(self, target: Target) -> str:
        """The percolator index of ``target``, created with its schema if it does not exist."""
        name = self.percolator_index(target)
        if name in self._known_indices:
            return name
        waiters = self._creating.get(name)
        if waiters is not None:  # another registration is creating it: wait for that
            done: Deferred[None] = Deferred()
            waiters.append(done)
            await done
            return name
        self._creating[name] = waiters = []
        try:
            await self.engine.run(lambda es: self.create_now(es, target))
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

    async def map_fields(self, target: Target, fields: set[str] | frozenset[str]) -> None:
        """Add mappings for fields the percolator index does not know yet."""
        mapped = self._mapped.setdefault(self.percolator_index(target), set())
        if fields - mapped:
            await self.engine.run(lambda es: self.add_missing(es, target, set(fields), mapped))

    def document_properties(
        self, es: Any, target: Target, templates: Templates | None = None
    ) -> dict[str, Any]:
        """The fields of what ``target`` covers, one mapping each.

        Existing indices first: where two covered indices disagree on a
        field's type, the index whose name sorts last wins (the newest daily
        index, whose template tomorrow's follows too); the other index's
        documents are percolated with that type, a value that does not parse
        as it losing that field for matching (``ignore_malformed``). Then the
        index templates that apply to names the target matches fill in the
        fields no index has yet, so tomorrow's ``long`` is a ``long`` today.
        """
        # A name that does not exist (yet) answers {}: ignore_unavailable, allow_no_indices.
        resp = es.indices.get_mapping(index=target.canonical, ignore_unavailable=True, allow_no_indices=True)
        merged: dict[str, Any] = {}
        for name in sorted(resp):
            if name.startswith(self.prefix):
                continue  # a wide pattern (``*``) covers the percolator indices too: not documents
            merge_properties(merged, resp[name].get("mappings", {}).get("properties", {}))
        templates = templates if templates is not None else _read_templates(es)
        return fill_properties(merged, templates.properties_for(target.inclusions))

    def add_missing(
        self,
        es: Any,
        target: Target,
        fields: set[str] | None,
        mapped: set[str] | None = None,
        templates: Templates | None = None,
        mapping: dict[str, Any] | None = None,
    ) -> int:
        """Map ``fields`` (None: every field of what the target covers) missing in the percolator index.

        ``mapped`` collects the wanted fields the percolator index has afterwards;
        ``mapping``: the percolator index's mapping when the caller has it already.
        """
        pindex = self.percolator_index(target)
        have = _properties(es, pindex) if mapping is None else mapping.get("properties", {})
        docs = self.document_properties(es, target, templates)
        wanted = leaf_fields(docs) if fields is None else fields
        missing = sorted(f for f in wanted if lookup(have, f) is None)
        found = mapped if mapped is not None else set()
        found.update(f for f in wanted if lookup(have, f) is not None)
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
        """Bring fields that appeared in covered indices (or their templates) into the percolator indices.

        Run by every lifecycle sweep, so a field Logstash's documents add to
        the index later has its real type in the percolator without a restart.
        A percolator index this beater knew and that is gone is forgotten
        (``forget``): the next registration creates it again, properly.
        """

        def sync(es: Any) -> tuple[int, set[str]]:
            names = es.indices.get_mapping(
                index=self.prefix + "*", ignore_unavailable=True, allow_no_indices=True
            )
            templates = _read_templates(es)
            added = 0
            for name, body in names.items():
                mapping = body.get("mappings", {})
                target = self.target_of(name, mapping.get("_meta"))
                if target is not None and self.percolator_index(target) == name:
                    added += self.add_missing(es, target, None, None, templates, mapping)
            return added, set(names)

        known = set(self._known_indices)
        added, present = await self.engine.run(sync)
        for gone in known - present:
            self.forget(gone)
        return added
