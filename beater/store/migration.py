"""The older one-percolator-index-per-target layout, migrated into the shared indices.

An older beater kept each target's queries in an index of their own,
``<prefix><name>`` (``<prefix>_t<hash>`` for a pattern or list). Once, when
a beater starts and before it serves (``QueryStore.migrate_layout``), each
such index has its queries copied into the shared index placement picks
(``beater/store/mappings.py``), and its name becomes the target's filtered
alias on the shared indices.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from beater.store.mappings import PercolatorIndices
from beater.store.schema import (
    META_FIELD,
    QUERY_FIELD,
    REGISTERED_FIELD,
    SID_FIELD,
    TARGET_FIELD,
    shared_number,
)
from common.query.fields import query_fields
from common.query.targets import InvalidTarget, Target, parse_target

#: Key of the canonical target in an older per-target percolator index's mapping ``_meta``.
TARGET_META = "estrom_target"

log = Logger()


class LayoutMigration:
    """Moves the queries of older per-target percolator indices into the shared ones."""

    def __init__(self, indices: PercolatorIndices) -> None:
        self.indices = indices
        self.prefix = indices.prefix

    async def migrate(self) -> int:
        """Move the queries of the older one-index-per-target layout into the shared indices.

        Each older percolator index (any ``<prefix>*`` index that is not a
        shared one) has its queries copied, with their lifecycle state, into
        the shared index ``place`` picks; then, in one atomic alias change, it
        is deleted and its name becomes the target's filtered alias. A query
        already in a shared index (registered again meanwhile) is kept as it
        is. Safe to run by several beaters at once. Returns the queries copied.
        """
        return await self.indices.engine.run(self._migrate_now)

    def target_of(self, pindex: str, meta: dict[str, Any] | None) -> Target | None:
        """The target an older per-target percolator index serves: from its ``_meta``, else its name."""
        text = (meta or {}).get(TARGET_META)
        if not isinstance(text, str):
            text = pindex[len(self.prefix) :]
        try:
            return parse_target(text)
        except InvalidTarget:
            return None  # made by hand, or by _bulk with no _meta: nothing to map it from

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
            n = self.indices.place_now(es, target, query_fields(source[QUERY_FIELD]))
            groups.add(n)
            meta = source.get(META_FIELD) or {}
            source.setdefault(SID_FIELD, hit["_id"])
            source[TARGET_FIELD] = target.canonical
            source[REGISTERED_FIELD] = int(float(meta.get("registered_at") or 0) * 1000)
            lines += [{"create": {"_index": self.indices.name(n), "_id": hit["_id"]}}, source]
        if lines:
            resp = es.bulk(body=lines, refresh="true")
            for item in resp.get("items", []):
                result = next(iter(item.values()))
                status = int(result.get("status", 500))
                if not (200 <= status < 300 or status == 409):  # 409: registered again meanwhile
                    raise RuntimeError(f"copy refused: {result.get('error')}")
        actions: list[dict[str, Any]] = [{"remove_index": {"index": name}}]
        actions += [self.indices.alias_action(target, n) for n in sorted(groups)]
        es.indices.update_aliases(body={"actions": actions})
        self.indices.aliased(target, groups)
        log.info("percolator_index.migrated", index=name, target=target.canonical, queries=len(lines) // 2)
        return len(lines) // 2
