"""The shared percolator indices as this beater knows them: created with their schema, their limits, their aliases.

Every target's queries share the indices ``<prefix>_shared-<n>``
(``beater/store/mappings.py`` says which one a query goes to). For
operators and older tools, every target keeps its old address:
``<prefix><name>`` (``<prefix>_t<hash>`` for a pattern or list) is a
filtered alias on the shared indices holding its queries. What this beater
knows of an index (that it exists, its field limit, which aliases cover it,
which fields fit there) is forgotten when the index vanishes or is rebuilt
(``beater/store/repair.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger

from beater.store.events import StoreEvents
from beater.store.field_limit import ENGINE_FIELD_LIMIT, field_limit_error, read_limits
from beater.store.schema import OWN_MAPPING, TARGET_FIELD, percolator_index_body, shared_index, shared_number
from common.engine import Engine
from common.query.targets import Target, percolator_suffix

log = Logger()


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


#: Document fields of one refused mapping request that a sweep tries one by one, at most.
ONE_BY_ONE = 16


class SharedIndices:
    """The shared indices: their names, creation, field limits, filtered aliases; what this beater knows of them."""

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
        #: shared index number -> its total-fields limit, and the concrete index last seen serving it
        self._limits: dict[int, int] = {}
        self._concrete: dict[int, str] = {}
        #: (canonical target, shared index number) whose filtered alias exists
        self._aliased: set[tuple[str, int]] = set()
        #: shared index name -> document fields the engine refused to map there (another type, or an
        #: object where there is a value): not asked again at every sweep, one request per field each
        #: time, until the index is rebuilt or forgotten
        self._unmappable: dict[str, set[str]] = {}

    def name(self, n: int) -> str:
        return shared_index(self.prefix, n)

    def alias_of(self, target: Target) -> str:
        """A target's own address: a filtered alias on the shared indices holding its queries."""
        return self.prefix + percolator_suffix(target)

    def alias_action(self, target: Target, n: int) -> dict[str, Any]:
        """The alias change by which ``target``'s filtered alias covers shared index ``n``."""
        return {
            "add": {
                "index": self.name(n),
                "alias": self.alias_of(target),
                "filter": {"term": {TARGET_FIELD: target.canonical}},
            }
        }

    def forget(self, pindex: str) -> None:
        """``pindex`` is gone (deleted under us): the next use creates it again, properly."""
        if pindex in self._known_indices:
            log.warn("percolator_index.vanished", index=pindex)
        self._known_indices.discard(pindex)
        n = shared_number(self.prefix, pindex)
        if n is not None:
            self.rebuilt(n)  # and what this beater knew of it goes with it

    def rebuilt(self, n: int) -> None:
        """Shared index ``n`` now has another generation (``beater/store/repair.py``): what this
        beater knew of its fields and aliases is stale; the index itself is there."""
        self._fits = {k: v for k, v in self._fits.items() if k[1] != n}
        self._aliased = {k for k in self._aliased if k[1] != n}
        self._unmappable.pop(self.name(n), None)
        self._limits.pop(n, None)
        self._concrete.pop(n, None)

    def unmappable(self, name: str) -> frozenset[str]:
        """The fields shared index ``name`` refused to map (``_put``): left out of the next attempts."""
        return frozenset(self._unmappable.get(name, ()))

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

    def _put(self, es: Any, name: str, props: dict[str, Any], one_by_one: int | None = None) -> None:
        """Map ``props`` in ``name``; if the engine refuses them together, each alone (``one_by_one``
        of them at most: the sweep's document fields; a query's fields are all tried)."""
        try:
            es.indices.put_mapping(index=name, body={"properties": props})
        except Exception as exc:
            if field_limit_error(exc):  # one by one would fail the same, one request each
                log.warn("mapping.field_limit", index=name, fields=len(props), error=str(exc))
                return
            # A field mapped meanwhile (by another beater) with another type: the rest one by one,
            # each a cluster state update that others queue behind; those left over are tried at
            # the next sweep.
            refused: list[str] = []
            try:
                for field_name, mapping in list(props.items())[:one_by_one]:
                    try:
                        es.indices.put_mapping(index=name, body={"properties": {field_name: mapping}})
                    except Exception as one:
                        if field_limit_error(one):
                            return
                        log.debug("mapping.skipped", field=field_name, error=str(one))
                        refused.append(field_name)
            finally:
                if refused:
                    self._unmappable.setdefault(name, set()).update(refused)
                    self.events.inc("percolator_fields_refused_total", len(refused), index=name)
                    log.info("mapping.fields_refused", index=name, fields=len(refused), first=refused[0])

    async def ensure_alias(self, target: Target, n: int) -> None:
        """The target's filtered alias covers shared index ``n`` (once per beater and pair)."""
        if (target.canonical, n) in self._aliased:
            return
        await self.engine.run(lambda es: self._add_aliases(es, [(target, n)]))

    def _add_aliases(self, es: Any, pairs: list[tuple[Target, int]]) -> None:
        actions = [self.alias_action(target, n) for target, n in pairs]
        try:
            es.indices.update_aliases(body={"actions": actions})
            self._aliased.update((t.canonical, n) for t, n in pairs)
        except Exception as exc:
            # An older per-target index of that name, not migrated yet (a beater starting migrates it).
            log.debug("percolator_alias.skipped", error=str(exc))

    def aliased(self, target: Target, groups: Iterable[int]) -> None:
        """``target``'s filtered alias was made to cover shared indices ``groups`` (by the caller)."""
        self._aliased.update((target.canonical, n) for n in groups)
