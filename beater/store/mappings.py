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

**Room.** A shared index has one field limit
(``index.mapping.total_fields.limit``) for every target, so what may take it
is bounded: the fields of the covered documents that no query names are
mapped by the sweep only while the index is below ``DOCUMENT_SHARE`` of its
limit; fields a query names that no covered index maps (new fields, counted
per target and reader by ``beater/store/budget.py``) only below
``NEW_FIELD_SHARE``; fields the covered indices map, up to the limit, and a
query whose fields do not fit goes to the next shared index. A shared index
past its limit anyway (left so by an older beater) is rebuilt with the
fields its queries name (``beater/store/repair.py``): ``<prefix>_shared-<n>``
is then an alias of ``<prefix>_shared-<n>_g<k>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from beater.store.events import StoreEvents
from beater.store.schema import (
    META_FIELD,
    OWN_MAPPING,
    QUERY_FIELD,
    REGISTERED_FIELD,
    SHARED_SUFFIX,
    SID_FIELD,
    TARGET_FIELD,
    count_fields,
    field_mapping_for,
    field_type,
    leaf_fields,
    lookup,
    nest,
    percolator_index_body,
    shared_index,
    shared_number,
    value_above,
)
from common.engine import Engine
from common.query.fields import query_fields
from common.query.identity import LimitExceeded
from common.query.targets import InvalidTarget, Target, globs_overlap, parse_target, percolator_suffix

#: Key of the canonical target in an older per-target percolator index's mapping ``_meta``.
TARGET_META = "estrom_target"
#: Shared percolator indices at most (see the module doc).
MAX_SHARED = 8
#: The sweep maps fields of the covered documents that no query names while a shared index
#: uses less than this share of its field limit (the rest is the queries').
DOCUMENT_SHARE = 0.5
#: Fields a query names that no covered index maps are mapped while a shared index uses less
#: than this share of its field limit (the rest is for fields documents have).
NEW_FIELD_SHARE = 0.75
#: The engine setting every shared index's fields count against.
FIELD_LIMIT_SETTING = "index.mapping.total_fields.limit"
#: Its default where an index does not set it.
ENGINE_FIELD_LIMIT = 1000

log = Logger()


def field_limit_error(exc: BaseException) -> bool:
    """Whether an engine error is the total-fields limit of a mapping."""
    info = getattr(exc, "info", None)
    return "Limit of total fields" in f"{exc} {info}"


def limit_of(body: dict[str, Any]) -> int:
    """The total-fields limit in one index's ``get_settings(flat_settings, include_defaults)`` answer."""
    for part in ("settings", "defaults"):
        value = (body.get(part) or {}).get(FIELD_LIMIT_SETTING)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
    return ENGINE_FIELD_LIMIT


def read_limits(es: Any, index: str) -> dict[str, int]:
    """Concrete index -> its total-fields limit, for the indices ``index`` names (a pattern too)."""
    resp = es.indices.get_settings(
        index=index,
        name=FIELD_LIMIT_SETTING,
        flat_settings=True,
        include_defaults=True,
        ignore_unavailable=True,
        allow_no_indices=True,
    )
    return {name: limit_of(body) for name, body in (resp or {}).items()}


def current_indices(prefix: str, *answers: dict[str, Any]) -> dict[int, str]:
    """Shared index number -> the concrete index that serves it, from ``get_alias`` (and other) answers.

    ``<prefix>_shared-<n>`` itself, or the generation the alias of that name
    points at; a generation being built (no alias yet) serves nothing.
    """
    aliases = answers[0] if answers else {}
    found: dict[int, str] = {}
    for concrete in sorted(set().union(*(set(a) for a in answers))):
        n = shared_number(prefix, concrete)
        if n is None:
            continue
        base = shared_index(prefix, n)
        if concrete == base or base in ((aliases.get(concrete) or {}).get("aliases") or {}):
            found[n] = concrete
    return found


def mapping_cost(have: dict[str, Any], missing: dict[str, dict[str, Any]]) -> int:
    """How many fields (as the engine counts them) mapping ``missing`` (dotted names) adds to ``have``."""
    if not missing:
        return 0
    merged = merge_properties(dict(have), nest(missing))
    return count_fields(merged) - count_fields(have)


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
        self,
        engine: Engine,
        prefix: str,
        shards: int | None = None,
        replicas: int | None = None,
        events: StoreEvents | None = None,
    ) -> None:
        self.engine = engine
        self.prefix = prefix
        #: primary shards and replicas of new percolator indices (shards None: one per data node)
        self.shards = shards
        self.replicas = replicas
        self.events = events or StoreEvents()
        self._known_indices: set[str] = set()
        #: (canonical target, shared index number) -> fields known to be mapped there as the target types them
        self._fits: dict[tuple[str, int], set[str]] = {}
        #: canonical target -> fields its covered indices (or templates) were seen to map
        self._documented: dict[str, set[str]] = {}
        #: shared index number -> its total-fields limit, and the concrete index last seen serving it
        self._limits: dict[int, int] = {}
        self._concrete: dict[int, str] = {}
        #: (canonical target, shared index number) whose filtered alias exists
        self._aliased: set[tuple[str, int]] = set()
        self._conflicts_logged: set[tuple[str, str]] = set()
        self._capped_logged: set[str] = set()

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
        if n is not None:
            self._limits.pop(n, None)
            self._concrete.pop(n, None)

    def rebuilt(self, n: int) -> None:
        """Shared index ``n`` now has another generation (``beater/store/repair.py``): what this
        beater knew of its fields and aliases is stale; the index itself is there."""
        self._fits = {k: v for k, v in self._fits.items() if k[1] != n}
        self._aliased = {k for k in self._aliased if k[1] != n}
        self._limits.pop(n, None)
        self._concrete.pop(n, None)

    def drop_fits(self, target: Target, n: int) -> None:
        """Forget which fields of ``target`` are mapped in shared index ``n`` (the engine said otherwise)."""
        self._fits.pop((target.canonical, n), None)

    def limit_now(self, es: Any, n: int, fresh: bool = False) -> int:
        """The total-fields limit of shared index ``n`` (read when ``fresh``, else as last read)."""
        limit = None if fresh else self._limits.get(n)
        if limit is None:
            found = read_limits(es, self.name(n))
            limit = next(iter(found.values()), ENGINE_FIELD_LIMIT)
            self._limits[n] = limit
        return limit

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
            # Made by an older beater: the fields added to estrom's own since (signposts, budgets).
            try:
                es.indices.put_mapping(index=name, body={"properties": OWN_MAPPING})
            except Exception as exc:
                if not field_limit_error(exc):
                    raise
                # At its field limit: placement maps them where there is room (``place_now``).
                log.warn("percolator_index.full", index=name, error=str(exc))
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
        except Exception as exc:
            if field_limit_error(exc):  # one by one would fail the same, one request each
                log.warn("mapping.field_limit", index=name, fields=len(props), error=str(exc))
                return
            # A field mapped meanwhile (by another beater) with another type: the rest one by one.
            for field_name, mapping in props.items():
                try:
                    es.indices.put_mapping(index=name, body={"properties": {field_name: mapping}})
                except Exception as one:
                    log.debug("mapping.skipped", field=field_name, error=str(one))
                    if field_limit_error(one):
                        return

    def _room(
        self, es: Any, n: int, have: dict[str, Any], missing: dict[str, dict[str, Any]], new: frozenset[str]
    ) -> str | None:
        """None if ``missing`` may be mapped in shared index ``n``; else ``"full"`` (past its limit)
        or ``"new"`` (new fields past ``NEW_FIELD_SHARE`` of it)."""
        if not missing:
            return None
        limit = self.limit_now(es, n)
        after = count_fields(have) + mapping_cost(have, missing)
        if new & set(missing) and after > NEW_FIELD_SHARE * limit:
            return "new"  # refused, not sent on: new fields take the room of one index at most
        if after > limit:
            return "full"
        return None

    def _refusal(
        self, es: Any, n: int, have: dict[str, Any], why: str, missing: dict[str, Any], new: frozenset[str]
    ) -> LimitExceeded:
        limit = self.limit_now(es, n)
        used = count_fields(have)
        adding = sorted(set(missing) & new) if why == "new" else sorted(missing)
        shown = ", ".join(adding[:5]) + (", ..." if len(adding) > 5 else "")
        if why == "new":
            reason = (
                f"shared percolator index {self.name(n)} maps {used} of its {limit} fields "
                f"({FIELD_LIMIT_SETTING}); fields no index of the target maps ({shown}) are added only "
                f"below {int(NEW_FIELD_SHARE * 100)}% of it, to keep room for the fields documents "
                "have. Queries on mapped fields still register; a query nobody listens to frees its "
                "fields once it is removed (ESTROM_QUERY_GRACE), and the beater rebuilds an index "
                "near its limit without them"
            )
        else:
            reason = (
                f"every shared percolator index is at its field limit ({limit}, {FIELD_LIMIT_SETTING}): "
                f"no room for {shown}; a query nobody listens to frees its fields once it is removed "
                "(ESTROM_QUERY_GRACE), and the beater rebuilds an index near its limit without them"
            )
        return LimitExceeded(reason, FIELD_LIMIT_SETTING)

    def place_now(
        self,
        es: Any,
        target: Target,
        fields: set[str] | frozenset[str],
        templates: Templates | None = None,
        admit: Callable[[Any, frozenset[str]], None] | None = None,
    ) -> int:
        """The shared index a query of ``target`` naming ``fields`` goes to, its fields mapped there.

        ``admit(es, new)`` is asked first with the fields no covered index maps
        (the budgets, ``beater/store/budget.py``); it raises to refuse. A query
        whose fields have no room in an index goes to the next one; new fields
        past ``NEW_FIELD_SHARE`` of the index they would go to are refused
        (LimitExceeded), as is a query no index has room for.
        """
        docs = self.document_properties(es, target, templates)
        new = frozenset(f for f in fields if lookup(docs, f) is None)
        self._documented.setdefault(target.canonical, set()).update(set(fields) - new)
        if admit is not None:
            admit(es, new)
        wanted = {f: field_mapping_for(f, docs) for f in fields}
        n = 0
        while True:
            name = self.create_now(es, n)
            have = _properties(es, name)
            last = n == MAX_SHARED - 1
            if last or self._fit(have, wanted, docs, target, name):
                missing = {f: m for f, m in wanted.items() if lookup(have, f) is None}
                # estrom's own fields of a query document, where an older index lacks them
                missing.update({k: m for k, m in OWN_MAPPING.items() if k not in have})
                if missing:
                    self.limit_now(es, n, fresh=True)  # an operator may have changed it
                why = self._room(es, n, have, missing, new)
                if why == "new" or (why == "full" and last):
                    raise self._refusal(es, n, have, why, missing, new)
                if why is None:
                    if missing:
                        self._put(es, name, missing)
                        have = _properties(es, name)
                    unmapped = [f for f in wanted if lookup(have, f) is None]
                    if unmapped and last:  # a racing beater took the room
                        raise self._refusal(es, n, have, "full", {f: wanted[f] for f in unmapped}, new)
                    # a racing beater may have mapped one with another type
                    if not unmapped and (last or self._fit(have, wanted, docs, target, name)):
                        self._fits.setdefault((target.canonical, n), set()).update(fields)
                        return n
            n += 1

    async def place(
        self,
        target: Target,
        fields: set[str] | frozenset[str],
        counted: Callable[[frozenset[str]], bool] | None = None,
        admit: Callable[[Any, frozenset[str]], None] | None = None,
    ) -> tuple[int, frozenset[str]]:
        """``place_now`` from the beater's thread: (shared index number, the fields no covered index maps).

        Fields known to fit somewhere, and new ones ``counted`` says are
        counted in the budgets already, cost no engine call.
        """
        for (canonical, n), fitting in sorted(self._fits.items(), key=lambda kv: kv[0][1]):
            if canonical == target.canonical and fields <= fitting and self.name(n) in self._known_indices:
                new = frozenset(set(fields) - self._documented.get(canonical, set()))
                if counted is None or counted(new):
                    return n, new
                break
        seen: list[frozenset[str]] = []

        def checked(es: Any, new: frozenset[str]) -> None:
            seen.append(new)
            if admit is not None:
                admit(es, new)

        n = await self.engine.run(lambda es: self.place_now(es, target, fields, admit=checked))
        return n, seen[-1] if seen else frozenset()

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
        room = int(DOCUMENT_SHARE * self.limit_now(es, n)) - count_fields(have)
        props: dict[str, dict[str, Any]] = {}
        for f in missing:
            mapping = field_mapping_for(f, docs)
            cost = mapping_cost(have, {**props, f: mapping}) - mapping_cost(have, props)
            if cost > room:
                if name not in self._capped_logged:
                    self._capped_logged.add(name)
                    log.info(
                        "mapping.documents_capped",
                        index=name,
                        share=DOCUMENT_SHARE,
                        reason="the rest of the field limit is kept for the fields queries name",
                    )
                break
            room -= cost
            props[f] = mapping
        if not props:
            return 0
        self._put(es, name, props)
        have.clear()
        have.update(_properties(es, name))
        return sum(1 for f in props if lookup(have, f) is not None)

    async def sync_mappings(self, registered: list[tuple[Target, frozenset[int]]]) -> int:
        """Bring fields that appeared in covered indices (or their templates) into the shared indices.

        Run by every lifecycle sweep, so a field Logstash's documents add to
        the index later has its real type in the percolator without a restart;
        and every target's filtered alias is put back if missing. A shared
        index this beater knew and that is gone is forgotten (``forget``): the
        next registration creates it again, properly.
        """

        pattern = self.prefix + SHARED_SUFFIX + "*"

        def sync(es: Any) -> tuple[int, dict[int, str], dict[int, int], dict[int, int]]:
            present = es.indices.get_mapping(index=pattern, ignore_unavailable=True, allow_no_indices=True)
            aliases = es.indices.get_alias(index=pattern, ignore_unavailable=True) or {}
            current = current_indices(self.prefix, aliases, present)
            limits = {
                n: limit
                for name, limit in read_limits(es, pattern).items()
                for n in current
                if current[n] == name
            }
            for n, concrete in current.items():
                if self._concrete.get(n) not in (None, concrete):  # rebuilt by another beater
                    self.rebuilt(n)
                self._concrete[n] = concrete
            self._limits.update(limits)
            have = {
                n: dict(present[concrete].get("mappings", {}).get("properties", {}))
                for n, concrete in current.items()
                if concrete in present
            }
            templates = _read_templates(es)
            added = 0
            for target, groups in registered:
                for n in sorted(groups):
                    if n in have:
                        added += self.add_missing(es, target, n, have[n], templates)
            lacking = [
                (target, n)
                for target, groups in registered
                for n in groups
                if n in have
                and self.alias_of(target) not in ((aliases.get(current[n]) or {}).get("aliases") or {})
            ]
            if lacking:
                self._add_aliases(es, lacking)
            return added, current, {n: count_fields(props) for n, props in have.items()}, limits

        known = set(self._known_indices)
        added, current, counts, limits = await self.engine.run(sync)
        present = {self.name(n) for n in current}
        for gone in known - present:
            self.forget(gone)
        for n, count in counts.items():
            self.events.set("percolator_fields", count, index=self.name(n))
            if n in limits:
                self.events.set("percolator_field_limit", limits[n], index=self.name(n))
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
