"""The fields of what a target covers: its indices' mappings, then the index templates that would apply.

A query's fields are mapped in its shared index before it is stored, with
the types its target gives them (``beater/store/mappings.py``): those of the
indices the target covers and, for fields no index has yet, those of the
templates that would apply to names it matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from beater.store.properties import fill_properties, merge_properties
from common.query.targets import Target, globs_overlap

log = Logger()


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


def read_templates(es: Any) -> Templates:
    """The engine's index templates, composable (with their components) and legacy; what cannot be read is left out."""

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


def document_properties(
    es: Any, prefix: str, target: Target, templates: Templates | None = None
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
        if name.startswith(prefix):
            continue  # a wide pattern (``*``) covers the percolator indices too: not documents
        merge_properties(merged, resp[name].get("mappings", {}).get("properties", {}))
    templates = templates if templates is not None else read_templates(es)
    return fill_properties(merged, templates.properties_for(target.inclusions))
