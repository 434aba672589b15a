"""Which percolator indices serve a document ingested into index ``X``: the covering targets.

Every registered read target has its percolator index. At ingest, the
beater needs the percolator indices of every target that covers ``X``; that
is computed once per new ``X`` and cached (``percolator_indices_for``), so a
batch costs one dictionary lookup and still one percolate request across
all of them. The cache is dropped when the set of targets or the engine's
aliases and data streams change.

The set is shared by every beater through the engine: each percolator index
keeps its canonical target in its mapping's ``_meta`` (``TARGET_META``), and
a beater rebuilds the set from there at every lifecycle sweep, when it
registers a target and when a subscription appears for a query it does not
know the target of. A single-name target (an index, alias or data stream
name) needs none of that: its percolator index is ``<prefix><name>``, which a
beater derives from the names alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from common.engine import TRANSPORT_ERRORS, Engine
from common.query.targets import InvalidTarget, Target, parse_target

log = Logger()

#: Key of the canonical target in a percolator index's mapping ``_meta``.
TARGET_META = "estrom_target"
#: A cache entry per distinct ingest name; past this many, it starts over.
_CACHE_MAX = 100_000


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


def topology_from(aliases: dict[str, Any], data_streams: dict[str, Any]) -> Topology:
    """A Topology from ``GET _alias`` and ``GET _data_stream`` answers."""
    names: dict[str, set[str]] = {}
    members: dict[str, list[str]] = {}
    write: dict[str, str] = {}
    for index, body in aliases.items():
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


class TargetSet:
    """The registered targets, their percolator indices and the covering cache."""

    def __init__(self, engine: Engine, prefix: str) -> None:
        self.engine = engine
        self.prefix = prefix
        #: percolator index -> its target, for targets that are not a single name
        self._targets: dict[str, Target] = {}
        self._topology = Topology()
        self._covering: dict[str, tuple[str, ...]] = {}
        #: False once the engine said it has no data streams (Elasticsearch OSS): not asked again
        self._data_streams = True

    def __len__(self) -> int:
        return len(self._targets)

    def knows(self, pindex: str) -> bool:
        """Whether ``pindex`` serves a target this beater matches documents against."""
        return pindex in self._targets or not pindex[len(self.prefix) :].startswith("_")

    def percolator_indices_for(self, index: str) -> tuple[str, ...]:
        """The percolator indices of every target covering a document ingested into ``index``."""
        found = self._covering.get(index)
        if found is None:
            names = self._topology.names_of(index)
            pindices = {self.prefix + n for n in names}  # single-name targets: by name alone
            pindices.update(p for p, t in self._targets.items() if t.covers(names))
            found = tuple(sorted(pindices))
            if len(self._covering) >= _CACHE_MAX:
                self._covering.clear()
            self._covering[index] = found
        return found

    def add(self, pindex: str, target: Target) -> None:
        """A target registered here: match it from now on."""
        if target.single_name is None and self._targets.get(pindex) != target:
            self._targets[pindex] = target
            self._covering.clear()

    def forget(self, pindex: str) -> None:
        if self._targets.pop(pindex, None) is not None:
            self._covering.clear()

    def replace(self, targets: dict[str, Target], topology: Topology) -> bool:
        """Install what the engine holds; True if anything changed (the cache is then dropped)."""
        if targets == self._targets and topology == self._topology:
            return False
        self._targets = targets
        self._topology = topology
        self._covering.clear()
        return True

    async def refresh(self) -> bool:
        """Re-read the targets (percolator indices' ``_meta``), aliases and data streams."""

        def read(es: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            mappings = es.indices.get_mapping(
                index=self.prefix + "*",
                ignore_unavailable=True,
                allow_no_indices=True,
                filter_path="*.mappings._meta",
            )
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
            return mappings or {}, aliases or {}, streams or {}

        mappings, aliases, streams = await self.engine.run(read)
        if "unsupported" in streams:  # an engine without data streams (Elasticsearch 7 OSS)
            log.debug("targets.no_data_streams", error=streams["unsupported"])
            self._data_streams = False
            streams = {}
        changed = self.replace(self._targets_from(mappings), topology_from(aliases, streams))
        log.debug("targets.refreshed", targets=len(self._targets), changed=changed)
        return changed

    def _targets_from(self, mappings: dict[str, Any]) -> dict[str, Target]:
        targets: dict[str, Target] = {}
        for pindex, body in mappings.items():
            meta = ((body or {}).get("mappings") or {}).get("_meta") or {}
            text = meta.get(TARGET_META)
            if not isinstance(text, str):
                continue  # a single-name target (older beaters wrote no _meta): known by its name
            try:
                target = parse_target(text)
            except InvalidTarget:
                log.warn("targets.bad_meta", index=pindex, target=text)
                continue
            if target.single_name is None:
                targets[pindex] = target
        return targets

    def targets(self) -> Iterable[tuple[str, Target]]:
        return list(self._targets.items())
