"""Which shared percolator index takes a query, and mapping there the fields its queries and documents use.

The percolator parses a query once, when it is stored, against the mapping
of that moment (``common/query/fields.py`` says why): so an index is created
with its schema before any query is written, fields a query names are mapped
before it is stored, and every lifecycle sweep brings in fields that appeared
in the covered indices meanwhile, with their real types. A field's types
come from what the query's target covers: the existing indices' mappings and
the index templates that would apply to names it matches
(``beater/store/covered_fields.py``, which says what wins when two covered
indices disagree).

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

For operators and older tools, every target keeps its old address: a
filtered alias on the shared indices holding its queries
(``beater/store/shared_indices.py``). Percolator indices of the older
one-index-per-target layout are migrated on start
(``beater/store/migration.py``).

**Room.** A shared index has one field limit
(``index.mapping.total_fields.limit``, ``beater/store/field_limit.py``) for
every target, so what may take it is bounded: the fields of the covered
documents that no query names are mapped by the sweep only while the index
is below ``DOCUMENT_SHARE`` of its limit; fields a query names that no
covered index maps (new fields, counted per target and reader by
``beater/store/budget.py``) only below ``NEW_FIELD_SHARE``; fields the
covered indices map, up to the limit, and a query whose fields do not fit
goes to the next shared index. A shared index
past its limit anyway (left so by an older beater) is rebuilt with the
fields its queries name (``beater/store/repair.py``): ``<prefix>_shared-<n>``
is then an alias of ``<prefix>_shared-<n>_g<k>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from beater.store.covered_fields import Templates, document_properties, read_templates
from beater.store.field_limit import FIELD_LIMIT_SETTING, read_limits
from beater.store.properties import mapping_cost, read_properties
from beater.store.schema import (
    OWN_MAPPING,
    SHARED_SUFFIX,
    count_fields,
    field_mapping_for,
    field_type,
    leaf_fields,
    lookup,
    value_above,
)
from beater.store.shared_indices import ONE_BY_ONE, SharedIndices, current_indices
from common.query.identity import LimitExceeded
from common.query.targets import Target

#: Shared percolator indices at most (see the module doc).
MAX_SHARED = 8
#: The sweep maps fields of the covered documents that no query names while a shared index
#: uses less than this share of its field limit (the rest is the queries').
DOCUMENT_SHARE = 0.5
#: Fields a query names that no covered index maps are mapped while a shared index uses less
#: than this share of its field limit (the rest is for fields documents have).
NEW_FIELD_SHARE = 0.75

log = Logger()


class PercolatorIndices(SharedIndices):
    """Placement of queries in the shared percolator indices, and mapping of their fields there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As ``SharedIndices``; placement and the sweep keep a memory of their own."""
        super().__init__(*args, **kwargs)
        #: canonical target -> fields its covered indices (or templates) were seen to map
        self._documented: dict[str, set[str]] = {}
        self._conflicts_logged: set[tuple[str, str]] = set()
        self._capped_logged: set[str] = set()

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
        docs = document_properties(es, self.prefix, target, templates)
        new = frozenset(f for f in fields if lookup(docs, f) is None)
        self._documented.setdefault(target.canonical, set()).update(set(fields) - new)
        if admit is not None:
            admit(es, new)
        wanted = {f: field_mapping_for(f, docs) for f in fields}
        n = 0
        while True:
            name = self.create_now(es, n)
            have = read_properties(es, name)
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
                        have = read_properties(es, name)
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
        docs = document_properties(es, self.prefix, target, templates)
        refused = self.unmappable(name)
        # Under a field the index maps as a value (``host.name`` where ``host`` is a keyword) a field
        # can never be mapped: left out without asking, as are those the engine refused before.
        missing = sorted(
            f
            for f in leaf_fields(docs)
            if lookup(have, f) is None and f not in refused and value_above(have, f) is None
        )
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
        self._put(es, name, props, one_by_one=ONE_BY_ONE)
        have.clear()
        have.update(read_properties(es, name))
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
            templates = read_templates(es)
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
