"""Field budgets: how many fields no index maps the queries of one target, or of one reader, may name.

Every field a query names is mapped in the shared percolator index before
the query is stored (``beater/store/mappings.py``), and that index has one
field limit for every target. A field that an index the target covers (or
an index template that applies to it) maps costs nothing extra: the
lifecycle sweep maps the documents' fields anyway. A field no such index
maps is new: only the query brought it. So the budgets count new fields:

* ``fields_per_target`` (``ESTROM_FIELDS_PER_TARGET``): the distinct new
  fields named by the stored queries of one read target;
* ``fields_per_principal`` (``ESTROM_FIELDS_PER_PRINCIPAL``): the distinct new
  fields named by the stored queries one reader registered, where the beater
  knows the reader (a reader logged in to the router itself, or the reader a trusted
  principal such as the tailor names in ``register_query``'s ``principal``).

Each stored query carries its new fields (``estrom_new_fields``) and its
reader (``estrom_principal``), so the count is read from the engine (one
aggregation) and holds across beaters and restarts; it goes down as queries
nobody listens to are removed (``ESTROM_QUERY_GRACE``). A query whose new
fields are counted already costs nothing and is not refused. Registrations
checked by this beater and not yet visible in the engine are counted too;
two beaters checking the same target at the same instant may each admit
one query over the budget, never more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from beater.store.schema import NEW_FIELDS_FIELD, PRINCIPAL_FIELD, SHARED_SUFFIX, TARGET_FIELD
from common.query.identity import LimitExceeded

#: How long an admitted registration counts from memory, until its write is surely visible.
PENDING_MS = 120_000


class FieldBudgetExceeded(LimitExceeded):
    """A target's or a reader's field budget is used up."""


class FieldBudget:
    """The per-target and per-reader budgets of new fields (see the module doc)."""

    def __init__(
        self,
        prefix: str,
        per_target: int,
        per_principal: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.per_target = per_target
        self.per_principal = per_principal
        self.clock = clock
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        #: (kind, key) -> the new fields known counted at the last check (read plus admitted)
        self._counted: dict[tuple[str, str], frozenset[str]] = {}
        #: (kind, key) -> [(admitted at, fields)]: admitted here, maybe not visible in the engine yet
        self._pending: dict[tuple[str, str], list[tuple[float, frozenset[str]]]] = {}

    def _budgets(self, target: str, principal: str | None) -> list[tuple[str, str, int]]:
        found = []
        if self.per_target:
            found.append(("target", target, self.per_target))
        if self.per_principal and principal:
            found.append(("principal", principal, self.per_principal))
        return found

    def counted(self, target: str, principal: str | None, new: frozenset[str]) -> bool:
        """Whether ``new`` is known to be counted already in every budget (then no engine call is needed)."""
        if not new:
            return True
        with self._lock:
            return all(
                new <= self._counted.get((kind, key), frozenset())
                for kind, key, _ in self._budgets(target, principal)
            )

    def check_now(self, es: Any, target: str, principal: str | None, new: frozenset[str]) -> None:
        """Admit a query of ``target`` (registered by ``principal``) naming ``new`` fields no index maps,
        or raise FieldBudgetExceeded naming the budget. On an engine thread."""
        if not new:
            return
        for kind, key, limit in self._budgets(target, principal):
            with self._key_lock(kind, key):
                used = self._read_used(es, kind, key, limit) | self._recent(kind, key)
                after = used | new
                if len(after) > limit and not new <= used:
                    with self._lock:
                        self._counted[(kind, key)] = frozenset(used)
                    raise self._refusal(kind, key, limit, used, new)
                with self._lock:
                    self._counted[(kind, key)] = frozenset(after)
                    self._pending.setdefault((kind, key), []).append((self.clock(), frozenset(new)))

    def _key_lock(self, kind: str, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault((kind, key), threading.Lock())

    def _recent(self, kind: str, key: str) -> set[str]:
        cutoff = self.clock() - PENDING_MS / 1000
        with self._lock:
            kept = [(t, f) for t, f in self._pending.get((kind, key), []) if t >= cutoff]
            if kept:
                self._pending[(kind, key)] = kept
            else:
                self._pending.pop((kind, key), None)
        return set().union(*(f for _, f in kept)) if kept else set()

    def _read_used(self, es: Any, kind: str, key: str, limit: int) -> set[str]:
        """The distinct new fields of the stored queries of ``key`` (at most ``limit + 1`` of them)."""
        field = TARGET_FIELD if kind == "target" else PRINCIPAL_FIELD
        resp = es.search(
            index=self.prefix + SHARED_SUFFIX + "*",
            body={
                "size": 0,
                "query": {"term": {field: key}},
                "aggs": {"used": {"terms": {"field": NEW_FIELDS_FIELD, "size": limit + 1}}},
            },
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        buckets = ((resp.get("aggregations") or {}).get("used") or {}).get("buckets") or []
        return {str(b["key"]) for b in buckets}

    @staticmethod
    def _refusal(kind: str, key: str, limit: int, used: set[str], new: frozenset[str]) -> FieldBudgetExceeded:
        adding = sorted(new - used)
        shown = ", ".join(adding[:5]) + (", ..." if len(adding) > 5 else "")
        if kind == "target":
            whose, setting = f"the queries of read target {key!r}", "ESTROM_FIELDS_PER_TARGET"
        else:
            whose, setting = f"the queries reader {key!r} registered", "ESTROM_FIELDS_PER_PRINCIPAL"
        count = f"more than {limit}" if len(used) > limit else str(len(used))
        return FieldBudgetExceeded(
            f"{whose} name {count} fields that no index they cover maps; this query would add "
            f"{len(adding)} more ({shown}), over the limit of {limit} ({setting}). Fields the covered "
            "indices map cost nothing; a query nobody listens to frees its fields once it is removed "
            "(ESTROM_QUERY_GRACE)",
            setting,
        )
