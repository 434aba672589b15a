"""The shared percolator indices exist and map the fields their queries and documents use.

The percolator parses a query once, when it is stored, against the mapping
of that moment (``common/query/fields.py`` says why): so an index is created
with its schema before any query is written, fields a query names are mapped
before it is stored, and every lifecycle sweep brings in fields that appeared
in the covered indices meanwhile, with their real types. A field's types
come from what the query's target covers: the existing indices' mappings and
the index templates that would apply to names it matches
(``document_properties`` says what wins when two covered indices disagree).

Every target's queries share one percolator index, ``<prefix>_shared-0``,
so a batch builds its in-memory index once, whatever the number of targets
covering it. One index has one type per field name; targets whose covered
indices disagree on a field's type are kept apart (``place``): a query goes
to the first shared index where every field it names is unmapped or mapped
with the type its own target gives it, and no field enclosing one is mapped
as a value there (``host`` a keyword, ``host.name`` named: a shape conflict,
``value_above``), ``_shared-1`` and on being created as
conflicts need them. So a query matches as it would against its own target
alone; each further index a batch's covering targets use costs that batch
one more build. Past ``MAX_SHARED`` indices, the last one takes the query and
its types there win (documents whose value does not parse as them lose that
field for matching, ``ignore_malformed``).

For operators and older tools, every target keeps its old address:
``<prefix><name>`` (``<prefix>_t<hash>`` for a pattern or list) is a filtered
alias on the shared indices holding its queries. Percolator indices of the
older one-index-per-target layout are migrated on start (``migrate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from beater.store.schema import (
    META_FIELD,
    OWN_MAPPING,
    QUERY_FIELD,
    REGISTERED_FIELD,
    SHARED_SUFFIX,
    SID_FIELD,
    TARGET_FIELD,
    field_mapping_for,
    field_type,
    leaf_fields,
    lookup,
    percolator_index_body,
    shared_index,
    shared_number,
    value_above,
)
from common.engine import Engine
from common.query.fields import query_fields
from common.query.targets import InvalidTarget, Target, globs_overlap, parse_target, percolator_suffix

#: Key of the canonical target in an older per-target percolator index's mapping ``_meta``.
TARGET_META = "estrom_target"
#: Shared percolator indices at most (see the module doc).
MAX_SHARED = 8

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
    """Creation, placement and mapping of the shared percolator indices; migration from the old layout."""

    def __init__(
        self, engine: Engine, prefix: str, shards: int | None = None, replicas: int | None = None
    ) -> None:
        self.engine = engine
        self.prefix = prefix
        #: primary shards and replicas of new percolator indices (shards None: one per data node)
        self.shards = shards
        self.replicas = replicas
        self._known_indices: set[str] = set()
        #: (canonical target, shared index number) -> fields known to be mapped there as the target types them
        self._fits: dict[tuple[str, int], set[str]] = {}
        #: (canonical target, shared index number) whose filtered alias exists
        self._aliased: set[tuple[str, int]] = set()
        self._conflicts_logged: set[tuple[str, str]] = set()

    def name(self, n: int) -> str:
        return shared_index(self.prefix, n)

    def alias_of(self, target: Target) -> str:
        """A target's own address: a filtered alias on the shared indices holding its queries."""
        return self.prefix + percolator_suffix(target)

    def target_of(self, pindex: str, meta: dict[str, Any] | None) -> Target | None:
        """The target an older per-target percolator index serves: from its ``_meta``, else its name."""
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
        n = shared_number(self.prefix, pindex)
        self._fits = {k: v for k, v in self._fits.items() if k[1] != n}
        self._aliased = {k for k in self._aliased if k[1] != n}

    def create_now(self, es: Any, n: int, force: bool = False) -> str:
        """Create shared index ``n`` with its schema if it does not exist (on an engine thread).

        ``force``: check the engine even if this beater created or saw it before.
        """
        name = self.name(n)
        if name in self._known_indices and not force:
            return name
        if not es.indices.exists(index=name):
            shards = self.shards
            if shards is None:  # one per data node: each node builds its part of a batch
                shards = max(1, int(es.cluster.health().get("number_of_data_nodes") or 1))
            body = percolator_index_body(shards, self.replicas)
            es.indices.create(index=name, body=body, ignore=400)  # 400: created meanwhile
        else:
            # Made by an older beater: the fields added to estrom's own since (signposts).
            es.indices.put_mapping(index=name, body={"properties": OWN_MAPPING})
        self._known_indices.add(name)
        return name

    def _fit(
        self,
        have: dict[str, Any],
        wanted: dict[str, dict[str, Any]],
        docs: dict[str, Any],
        target: Target,
        name: str,
    ) -> bool:
        """Whether every wanted field can be mapped in ``have`` as the target types and shapes it.

        A field fits where it is unmapped or mapped with the wanted type, and
        no field enclosing it is mapped as a value there unless the target's
        own documents (``docs``) have that value too.
        """
        fits = True
        for f, mapping in wanted.items():
            found = lookup(have, f)
            if found is not None and field_type(found) != field_type(mapping):
                self._conflict(target, name, f, field_type(found), field_type(mapping))
                fits = False
                continue
            above = value_above(have, f) if found is None else None
            if above is not None and value_above(docs, f) != above:
                self._conflict(target, name, f, f"{above}: {field_type(lookup(have, above))}", "object")
                fits = False
        return fits

    def _conflict(self, target: Target, name: str, field: str, mapped: str, wanted: str) -> None:
        if (target.canonical, field) not in self._conflicts_logged:
            self._conflicts_logged.add((target.canonical, field))
            log.info(
                "mapping.type_conflict",
                index=name,
                target=target.canonical,
                field=field,
                mapped=mapped,
                wanted=wanted,
            )

    def _put(self, es: Any, name: str, props: dict[str, Any]) -> None:
        try:
            es.indices.put_mapping(index=name, body={"properties": props})
        except Exception:
            # A field mapped meanwhile (by another beater) with another type: the rest one by one.
            for field_name, mapping in props.items():
                try:
                    es.indices.put_mapping(index=name, body={"properties": {field_name: mapping}})
                except Exception as exc:
                    log.debug("mapping.skipped", field=field_name, error=str(exc))

    def place_now(
        self, es: Any, target: Target, fields: set[str] | frozenset[str], templates: Templates | None = None
    ) -> int:
        """The shared index a query of ``target`` naming ``fields`` goes to, its fields mapped there."""
        docs = self.document_properties(es, target, templates)
        wanted = {f: field_mapping_for(f, docs) for f in fields}
        n = 0
        while True:
            name = self.create_now(es, n)
            have = _properties(es, name)
            last = n == MAX_SHARED - 1
            if last or self._fit(have, wanted, docs, target, name):
                missing = {f: m for f, m in wanted.items() if lookup(have, f) is None}
                if missing:
                    self._put(es, name, missing)
                    have = _properties(es, name)
                if last or self._fit(have, wanted, docs, target, name):  # a racing beater may have mapped one
                    self._fits.setdefault((target.canonical, n), set()).update(fields)
                    return n
            n += 1

    async def place(self, target: Target, fields: set[str] | frozenset[str]) -> int:
        """``place_now`` from the beater's thread; fields known to fit somewhere cost no engine call."""
        for (canonical, n), fitting in sorted(self._fits.items(), key=lambda kv: kv[0][1]):
            if canonical == target.canonical and fields <= fitting and self.name(n) in self._known_indices:
                return n
        return await self.engine.run(lambda es: self.place_now(es, target, fields))

    async def ensure_alias(self, target: Target, n: int) -> None:
        """The target's filtered alias covers shared index ``n`` (once per beater and pair)."""
        if (target.canonical, n) in self._aliased:
            return
        await self.engine.run(lambda es: self._add_aliases(es, [(target, n)]))

    def _add_aliases(self, es: Any, pairs: list[tuple[Target, int]]) -> None:
        actions = [
            {
                "add": {
                    "index": self.name(n),
                    "alias": self.alias_of(target),
                    "filter": {"term": {TARGET_FIELD: target.canonical}},
                }
            }
            for target, n in pairs
        ]
        try:
            es.indices.update_aliases(body={"actions": actions})
            self._aliased.update((t.canonical, n) for t, n in pairs)
        except Exception as exc:
            # An older per-target index of that name, not migrated yet (the next sweep does it).
            log.debug("percolator_alias.skipped", error=str(exc))

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
        n: int,
        have: dict[str, Any],
        templates: Templates | None = None,
    ) -> int:
        """Map every field of what ``target`` covers that shared index ``n`` does not map yet.

        ``have``: that index's properties, updated with what is added. A field
        mapped there with another type stays as it is: the target's queries
        naming it were placed in another index (``place``).
        """
        name = self.name(n)
        docs = self.document_properties(es, target, templates)
        missing = sorted(f for f in leaf_fields(docs) if lookup(have, f) is None)
        if not missing:
            return 0
        props = {f: field_mapping_for(f, docs) for f in missing}
        self._put(es, name, props)
        have.clear()
        have.update(_properties(es, name))
        return sum(1 for f in missing if lookup(have, f) is not None)

    async def sync_mappings(self, registered: list[tuple[Target, frozenset[int]]]) -> int:
        """Bring fields that appeared in covered indices (or their templates) into the shared indices.

        Run by every lifecycle sweep, so a field Logstash's documents add to
        the index later has its real type in the percolator without a restart;
        and every target's filtered alias is put back if missing. A shared
        index this beater knew and that is gone is forgotten (``forget``): the
        next registration creates it again, properly.
        """

        def sync(es: Any) -> tuple[int, set[str]]:
            present = es.indices.get_mapping(
                index=self.prefix + SHARED_SUFFIX + "*", ignore_unavailable=True, allow_no_indices=True
            )
            have = {
                name: dict(body.get("mappings", {}).get("properties", {})) for name, body in present.items()
            }
            templates = _read_templates(es)
            added = 0
            for target, groups in registered:
                for n in sorted(groups):
                    if self.name(n) in have:
                        added += self.add_missing(es, target, n, have[self.name(n)], templates)
            aliases = es.indices.get_alias(index=self.prefix + SHARED_SUFFIX + "*", ignore_unavailable=True)
            lacking = [
                (target, n)
                for target, groups in registered
                for n in groups
                if self.name(n) in have
                and self.alias_of(target) not in ((aliases.get(self.name(n)) or {}).get("aliases") or {})
            ]
            if lacking:
                self._add_aliases(es, lacking)
            return added, set(present)

        known = set(self._known_indices)
        added, present = await self.engine.run(sync)
        for gone in known - present:
            self.forget(gone)
        return added

    async def migrate(self) -> int:
        """Move the queries of the older one-index-per-target layout into the shared indices.

        Each older percolator index (any ``<prefix>*`` index that is not a
        shared one) has its queries copied, with their lifecycle state, into
        the shared index ``place`` picks; then, in one atomic alias change, it
        is deleted and its name becomes the target's filtered alias. A query
        already in a shared index (registered again meanwhile) is kept as it
        is. Safe to run by several beaters at once. Returns the queries copied.
        """
        return await self.engine.run(self._migrate_now)

    def _migrate_now(self, es: Any) -> int:
        rows = es.cat.indices(index=self.prefix + "*", format="json", h="index")
        legacy = sorted(r["index"] for r in rows if shared_number(self.prefix, r["index"]) is None)
        copied = 0
        for name in legacy:
            try:
                copied += self._migrate_one(es, name)
            except Exception as exc:
                if not es.indices.exists_alias(name=name):  # else: another beater migrated it meanwhile
                    log.warn("percolator_index.migration_failed", index=name, error=str(exc))
        return copied

    def _migrate_one(self, es: Any, name: str) -> int:
        mapping = es.indices.get_mapping(index=name).get(name, {}).get("mappings", {})
        target = self.target_of(name, mapping.get("_meta"))
        if target is None:
            log.warn("percolator_index.not_migrated", index=name, reason="no target in its name or _meta")
            return 0
        hits: list[dict[str, Any]] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"query": {"match_all": {}}, "size": 1000, "sort": [{SID_FIELD: "asc"}]}
            if after is not None:
                body["search_after"] = after
            page = es.search(index=name, body=body)["hits"]["hits"]
            hits.extend(page)
            if len(page) < 1000:
                break
            after = page[-1]["sort"]
        lines: list[dict[str, Any]] = []
        groups: set[int] = set()
        for hit in hits:
            source = dict(hit["_source"])
            if QUERY_FIELD not in source:
                continue
            n = self.place_now(es, target, query_fields(source[QUERY_FIELD]))
            groups.add(n)
            meta = source.get(META_FIELD) or {}
            source.setdefault(SID_FIELD, hit["_id"])
            source[TARGET_FIELD] = target.canonical
            source[REGISTERED_FIELD] = int(float(meta.get("registered_at") or 0) * 1000)
            lines += [{"create": {"_index": self.name(n), "_id": hit["_id"]}}, source]
        if lines:
            resp = es.bulk(body=lines, refresh="true")
            for item in resp.get("items", []):
                result = next(iter(item.values()))
                status = int(result.get("status", 500))
                if not (200 <= status < 300 or status == 409):  # 409: registered again meanwhile
                    raise RuntimeError(f"copy refused: {result.get('error')}")
        actions: list[dict[str, Any]] = [{"remove_index": {"index": name}}]
        actions += [
            {
                "add": {
                    "index": self.name(n),
                    "alias": self.alias_of(target),
                    "filter": {"term": {TARGET_FIELD: target.canonical}},
                }
            }
            for n in sorted(groups)
        ]
        es.indices.update_aliases(body={"actions": actions})
        self._aliased.update((target.canonical, n) for n in groups)
        log.info("percolator_index.migrated", index=name, target=target.canonical, queries=len(lines) // 2)
        return len(lines) // 2
