"""Which stored queries serve a document ingested into index ``X``: the covering targets.

Every query lives in a shared percolator index (``beater/store/mappings.py``)
with its canonical target in ``estrom_target``. At ingest, the beater needs
the targets covering ``X`` (by name, by the engine's aliases and data
streams) and the shared percolator indices that hold their queries: that is
computed once per new ``X`` and cached (``covering``), so a batch costs one
dictionary lookup and one percolate request with a ``terms`` filter on those
targets. The cache is dropped when the set of targets or the engine's aliases
and data streams change.

The set is shared by every beater through the engine: a beater reads the
distinct targets of the shared indices at every lifecycle sweep, on joining,
learns a target when it registers it or a subscription appears for one of
its queries, and, in the window before any of that, still percolates every
query registered since shortly before its last read
(``Covering.recent_since_ms``) and keeps the matches whose target covers
``X`` (``admits``): a target registered through any beater is matched by
every beater from the first batch percolated after the registration answered.
A single-name target (an index, alias or data stream name) needs none of
that: it covers ``X`` when it is one of ``X``'s names.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from beater.store.events import StoreEvents
from beater.store.schema import SHARED_SUFFIX, TARGET_FIELD, shared_index, shared_number
from common.engine import TRANSPORT_ERRORS, Engine
from common.query.targets import InvalidTarget, Target, parse_target

log = Logger()

#: A cache entry per distinct ingest name; past this many, it starts over.
_CACHE_MAX = 100_000
#: Queries registered this long before a beater's last read of the targets are
#: still percolated unfiltered by it (a write that was slow to become visible,
#: clocks of beaters a little apart): wider costs nothing but a few candidates.
RECENT_SLACK_MS = 60_000
#: Seconds a registration's read of the aliases serves further registrations on the same target.
LOOK_TTL = 5.0
#: Distinct targets read per aggregation page.
_PAGE = 1000


@dataclass(frozen=True)
class Topology:
    """The engine's aliases and data streams: which names lead to which concrete index."""

    #: concrete index -> alias and data stream names that point at it
    names_of_index: dict[str, frozenset[str]] = field(default_factory=dict)
    #: alias or data stream name -> the index a write through it lands in
    write_index: dict[str, str] = field(default_factory=dict)

    def names_of(self, name: str) -> frozenset[str]:
        """Every name by which a target may cover a document ingested into ``name``."""
        names = {name} | self.names_of_index.get(name, frozenset())
        written = self.write_index.get(name)
        if written is not None:  # ingested through an alias or data stream name
            names |= {written} | self.names_of_index.get(written, frozenset())
        return frozenset(names)

    def concrete(self, name: str) -> str:
        """The concrete index a document ingested into ``name`` goes to (``_index`` of its hits)."""
        return self.write_index.get(name, name)


def topology_from(aliases: dict[str, Any], data_streams: dict[str, Any], skip: str = "") -> Topology:
    """A Topology from ``GET _alias`` and ``GET _data_stream`` answers.

    ``skip``: a prefix of indices left out (estrom's own percolator indices and their aliases).
    """
    names: dict[str, set[str]] = {}
    members: dict[str, list[str]] = {}
    write: dict[str, str] = {}
    for index, body in aliases.items():
        if skip and index.startswith(skip):
            continue
        for alias, spec in (body.get("aliases") or {}).items():
            names.setdefault(index, set()).add(alias)
            members.setdefault(alias, []).append(index)
            if (spec or {}).get("is_write_index"):
                write[alias] = index
    for alias, indices in members.items():
        if alias not in write and len(indices) == 1:
            write[alias] = indices[0]
    for stream in data_streams.get("data_streams", []):
        backing = [i["index_name"] for i in stream.get("indices", [])]
        for index in backing:
            names.setdefault(index, set()).add(stream["name"])
        if backing:
            write[stream["name"]] = backing[-1]
    return Topology({k: frozenset(v) for k, v in names.items()}, write)


@dataclass(frozen=True)
class Covering:
    """What one percolate request for documents ingested into an index needs."""

    #: the concrete index the documents go to: ``_index`` of their hits
    concrete: str
    #: canonical targets covering it, sorted: the ``terms`` filter
    targets: tuple[str, ...]
    #: the shared percolator indices to search, sorted
    indices: tuple[str, ...]
    #: every target this beater knows (the recent queries of these need no second look)
    known: tuple[str, ...] = ()


class TargetSet:
    """The registered targets, the shared indices holding their queries, and the covering cache."""

    def __init__(self, engine: Engine, prefix: str, events: StoreEvents | None = None) -> None:
        self.engine = engine
        self.prefix = prefix
        #: canonical target -> its Target, for targets that are not a single name
        self._targets: dict[str, Target] = {}
        #: canonical target (single names too) -> numbers of the shared indices holding its queries
        self._where: dict[str, frozenset[int]] = {}
        self._topology = Topology()
        self._covering: dict[str, Covering] = {}
        #: sorted keys of ``_where``, shared by the cache's entries (None: to compute)
        self._known: tuple[str, ...] | None = None
        #: canonical target -> when this beater learned it (registered, admitted), epoch ms
        self._learned_at: dict[str, int] = {}
        #: queries registered from this instant on are percolated whatever their target (see module doc)
        self.recent_since_ms = 0
        #: False once the engine said it has no data streams (Elasticsearch OSS): not asked again
        self._data_streams = True
        #: the store's counters (``beater/store/events.py``), which the percolator reaches through this set
        self.events = events or StoreEvents()
        #: when the aliases and data streams were last read, epoch ms (``unseen_aliases``)
        self._topology_read_ms = 0
        #: when this beater last learned a target, epoch ms (``aliases_stale``)
        self._last_learned_ms = 0
        #: names ingested into since this beater started (``first_write``)
        self._written: set[str] = set()
        #: canonical target -> when its aliases were last read for a registration (``look_at``)
        self._looked: dict[str, float] = {}

    def _clear(self) -> None:
        self._covering.clear()
        self._known = None

    def __len__(self) -> int:
        return len(self._targets)

    def concrete(self, name: str) -> str:
        """The index a document ingested into ``name`` is percolated as (an alias's write index)."""
        return self._topology.concrete(name)

    @property
    def aliases_stale(self) -> bool:
        """Whether a target was learned (from a subscription, a registration, a percolation) since
        the aliases were last read: the next percolation re-reads them first."""
        return self._last_learned_ms >= self._topology_read_ms > 0 or (
            self._last_learned_ms > 0 and self._topology_read_ms == 0
        )

    def unseen_aliases(self, canonical: str) -> bool:
        """Whether ``canonical`` is new to this beater, or was learned after its aliases were read.

        A target learned from a subscription or a percolation may be an alias
        made a moment ago: percolation re-reads the aliases before judging it.
        """
        learned = self._learned_at.get(canonical)
        return canonical not in self._where or (learned is not None and learned >= self._topology_read_ms)

    def knows(self, canonical: str) -> bool:
        """Whether this beater matches documents against the queries of ``canonical``."""
        return canonical in self._where

    def covering(self, index: str) -> Covering:
        """Targets covering a document ingested into ``index`` and the indices holding their queries."""
        found = self._covering.get(index)
        if found is None:
            names = self._topology.names_of(index)
            # single-name targets: by name alone, registered or not (the filter costs nothing)
            targets = set(names) | {c for c, t in self._targets.items() if t.covers(names)}
            groups = {0}.union(*(self._where.get(c, frozenset()) for c in targets))
            if self._known is None:
                self._known = tuple(sorted(self._where))
            found = Covering(
                self._topology.concrete(index),
                tuple(sorted(targets)),
                tuple(shared_index(self.prefix, n) for n in sorted(groups)),
                self._known,
            )
            if len(self._covering) >= _CACHE_MAX:
                self._clear()
            self._covering[index] = found
        return found

    def admits(self, canonical: str, index: str, pindex: str) -> bool:
        """Whether a query on ``canonical`` (found in ``pindex``) this beater did not know of covers ``index``.

        It is learned: its queries are in the covering sets from the next batch on.
        """
        group = shared_number(self.prefix, pindex)
        try:
            target = parse_target(canonical)
        except InvalidTarget:
            return False
        if group is not None:
            self.add(target, group)
        return target.covers(self._topology.names_of(index))

    def signposted(self, canonical: str, group: int, index: str) -> str | None:
        """A signpost says ``canonical`` has queries in shared index ``group``: its name, if that
        target covers ``index`` (then it is learned, and in the covering sets from now on)."""
        try:
            target = parse_target(canonical)
        except InvalidTarget:
            return None
        if not target.covers(self._topology.names_of(index)):
            return None
        self.add(target, group)
        return shared_index(self.prefix, group)

    def add(self, target: Target, group: int) -> None:
        """A query of ``target`` is stored in shared index ``group``: match it from now on."""
        where = self._where.get(target.canonical, frozenset())
        if group in where:
            return
        self._where[target.canonical] = where | {group}
        self._learned_at[target.canonical] = self._last_learned_ms = int(time.time() * 1000)
        if target.single_name is None:
            self._targets[target.canonical] = target
        self._clear()

    def replace(self, where: dict[str, frozenset[int]], topology: Topology) -> bool:
        """Install what the engine holds; True if anything changed (the cache is then dropped)."""
        if where == self._where and topology == self._topology:
            return False
        targets: dict[str, Target] = {}
        for canonical in where:
            try:
                target = parse_target(canonical)
            except InvalidTarget:
                log.warn("targets.bad_target", target=canonical)
                continue
            if target.single_name is None:
                targets[canonical] = target
        self._where = dict(where)
        self._targets = targets
        self._topology = topology
        self._clear()
        self._learned_at = {c: t for c, t in self._learned_at.items() if c in where}
        return True

    def registered(self) -> Iterable[tuple[Target, frozenset[int]]]:
        """Every known target and the shared indices holding its queries (the mapping sync's list)."""
        found: list[tuple[Target, frozenset[int]]] = []
        for canonical, groups in sorted(self._where.items()):
            try:
                found.append((parse_target(canonical), groups))
            except InvalidTarget:
                continue
        return found

    def _read_where(self, es: Any) -> dict[str, frozenset[int]]:
        """Distinct targets of every shared index, paged with a composite aggregation."""
        rows = es.cat.indices(index=self.prefix + SHARED_SUFFIX + "*", format="json", h="index")
        where: dict[str, set[int]] = {}
        for name in sorted(r["index"] for r in rows):
            n = shared_number(self.prefix, name)
            if n is None:
                continue
            after: dict[str, Any] | None = None
            while True:
                composite: dict[str, Any] = {
                    "size": _PAGE,
                    "sources": [{"t": {"terms": {"field": TARGET_FIELD}}}],
                }
                if after is not None:
                    composite["after"] = after
                resp = es.search(
                    index=name,
                    body={"size": 0, "aggs": {"targets": {"composite": composite}}},
                    ignore_unavailable=True,
                    allow_no_indices=True,
                )
                agg = (resp.get("aggregations") or {}).get("targets") or {}
                buckets = agg.get("buckets") or []
                for bucket in buckets:
                    where.setdefault(str(bucket["key"]["t"]), set()).add(n)
                if len(buckets) < _PAGE or not agg.get("after_key"):
                    break
                after = agg["after_key"]
        return {c: frozenset(g) for c, g in where.items()}

    def _read_topology(self, es: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """``GET _alias`` and ``GET _data_stream`` (``{"unsupported": ...}`` where the engine has none)."""
        aliases = es.indices.get_alias(ignore_unavailable=True, filter_path="*.aliases")
        streams: dict[str, Any] = {}
        if self._data_streams:
            try:
                if self.engine.family == "opensearch":
                    # opensearch-py's get_data_stream takes no expand_wildcards (OpenSearch
                    # has no hidden data streams to expand to); passing it is a TypeError.
                    streams = es.indices.get_data_stream(name="*")
                else:
                    streams = es.indices.get_data_stream(name="*", expand_wildcards="all")
            except TRANSPORT_ERRORS as exc:
                if exc.status_code not in (400, 404, 405):
                    raise
                streams = {"unsupported": str(exc)}
        return aliases or {}, streams or {}

    def _streams_seen(self, streams: dict[str, Any]) -> dict[str, Any]:
        if "unsupported" in streams:  # an engine without data streams (Elasticsearch 7 OSS)
            log.debug("targets.no_data_streams", error=streams["unsupported"])
            self._data_streams = False
            return {}
        return streams

    async def refresh_topology(self) -> bool:
        """Re-read the engine's aliases and data streams only (the targets as they are); True if changed.

        The moments an alias may have changed under a target (a registration
        on a name, a target this beater learns from a percolation): cheaper
        than :meth:`refresh`, and not left to the next sweep.
        """
        started = int(time.time() * 1000)
        aliases, streams = await self.engine.run(self._read_topology)
        self._topology_read_ms = max(self._topology_read_ms, started)
        topology = topology_from(aliases, self._streams_seen(streams), skip=self.prefix)
        return self.replace(dict(self._where), topology)

    async def first_write(self, index: str) -> None:
        """The first document ingested into ``index`` here: re-read the aliases (once per name).

        An alias made on ``index`` a moment ago decides whose tails its
        documents reach (and whether the writer may write them).
        """
        if index in self._written:
            return
        if len(self._written) >= _CACHE_MAX:
            self._written.clear()
        await self.refresh_topology()
        self._written.add(index)

    async def look_at(self, canonical: str, now: float) -> None:
        """A registration on ``canonical``: re-read the aliases unless they were read for it lately.

        A query registered on an alias made a moment ago must match the next
        document ingested into the aliased index, not one after the next sweep.
        """
        seen = self._looked.get(canonical)
        if seen is not None and now - seen < LOOK_TTL:
            return
        if len(self._looked) >= _CACHE_MAX:
            self._looked.clear()
        self._looked[canonical] = now
        await self.refresh_topology()

    async def refresh(self) -> bool:
        """Re-read the targets (distinct ``estrom_target`` of the shared indices), aliases and data streams."""
        started = int(time.time() * 1000)

        def read(es: Any) -> tuple[dict[str, frozenset[int]], dict[str, Any], dict[str, Any]]:
            return self._read_where(es), *self._read_topology(es)

        where, aliases, streams = await self.engine.run(read)
        streams = self._streams_seen(streams)
        self._topology_read_ms = max(self._topology_read_ms, started)
        # Targets learned here since the read started (registered, admitted) stay.
        for canonical, groups in self._where.items():
            missing = canonical not in where or not groups <= where[canonical]
            if missing and self._learned_after(canonical, started):
                where[canonical] = where.get(canonical, frozenset()) | groups
        changed = self.replace(where, topology_from(aliases, streams, skip=self.prefix))
        self.recent_since_ms = started - RECENT_SLACK_MS
        log.debug("targets.refreshed", targets=len(self._targets), changed=changed)
        return changed

    def _learned_after(self, canonical: str, started_ms: int) -> bool:
        """Learned here since ``started_ms``: a read that started before may not see it yet.

        A registration's write is visible before it answers, so a read started
        later sees it; a target older than the read and missing from it has no
        queries left (collected).
        """
        return self._learned_at.get(canonical, 0) >= started_ms
