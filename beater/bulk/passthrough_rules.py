"""What a shipper's start-up writes through the pass-through may touch: only the writer's own targets.

Filebeat's and Logstash's default set-up writes an index template (legacy
``_template`` or composable ``_index_template``), an ILM policy, and the
first index behind its write alias (``PUT /<filebeat-{now/d}-000001>`` with
``aliases``): the index's name and every alias it is created with must be
inside the writer's targets. A
template decides the settings and the *aliases* of every index its patterns
match, so it is a write to those indices: each pattern and each alias must
be inside the writer's targets, and so must the patterns of a template it
replaces. An ILM policy decides when indices are deleted: one in use may be
replaced only by a writer of every index using it. Component templates are
shared building blocks of other templates, with no patterns of their own to
check: only the engine-credentials mode passes them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import IO, Any

#: ``refusal(name_or_pattern)``: why the writer may not write it, or None.
Refusal = Callable[[str], str | None]
#: ``get(path)``: the engine's JSON at ``path``, None where it answers 404.
Get = Callable[[str], Awaitable[Any]]

TEMPLATE_KINDS = ("_template", "_index_template")


def _patterns(value: Any) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        return [str(p) for p in value]
    return []


def template_names(kind: str, template: Any) -> list[str]:
    """Every index pattern and alias a template body names."""
    if not isinstance(template, dict):
        return []
    names = _patterns(template.get("index_patterns"))
    inner = template.get("template") if kind == "_index_template" else template
    aliases = inner.get("aliases") if isinstance(inner, dict) else None
    if isinstance(aliases, dict):
        names.extend(str(a) for a in aliases)
    return names


def _first(names: list[str], refusal: Refusal) -> str | None:
    for name in names:
        reason = refusal(name)
        if reason is not None:
            return reason
    return None


def _index_refusal(name: str, body: IO[bytes], refusal: Refusal) -> str | None:
    """An index created through the pass-through: its name (date math too) and its aliases."""
    reason = refusal(name)
    if reason is not None:
        return reason
    raw = body.read()
    try:
        spec = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        return f"the index body is not JSON: {exc}"
    aliases = spec.get("aliases") if isinstance(spec, dict) else None
    return _first([str(a) for a in aliases], refusal) if isinstance(aliases, dict) else None


def _existing_templates(kind: str, found: Any) -> list[Any]:
    """The template bodies of a GET answer (legacy: ``{name: body}``; composable: ``index_templates``)."""
    if not isinstance(found, dict):
        return []
    if kind == "_index_template":
        return [t.get("index_template") for t in found.get("index_templates", []) if isinstance(t, dict)]
    return list(found.values())


async def passthrough_refusal(
    segments: list[str], body: IO[bytes], refusal: Refusal, get: Get, engine_judges: bool = False
) -> str | None:
    """Why a pass-through write (PUT/POST with a body) is refused; None when it may go to the engine."""
    kind = segments[0] if segments else ""
    if len(segments) == 1 and not kind.startswith("_"):
        return _index_refusal(kind, body, refusal)
    if kind == "_component_template":
        if engine_judges:
            return None
        return (
            "component templates are shared by other templates: only the engine-credentials "
            "mode (ESTROM_BULK_AUTH=engine) passes them"
        )
    if kind in TEMPLATE_KINDS:
        if len(segments) != 2:
            return f"PUT /{kind}/<name> takes one template name"
        try:
            template = json.load(body)
        except ValueError as exc:
            return f"the template is not JSON: {exc}"
        if not isinstance(template, dict) or not _patterns(template.get("index_patterns")):
            return "a template without index_patterns is refused"
        names = template_names(kind, template)
        reason = _first(names, refusal)
        if reason is not None:
            return f"template [{segments[1]}]: {reason}"
        for old in _existing_templates(kind, await get(f"/{kind}/{segments[1]}")):
            reason = _first(template_names(kind, old), refusal)
            if reason is not None:
                return f"template [{segments[1]}] exists and is not the writer's to replace: {reason}"
        return None
    if kind == "_ilm":
        if len(segments) != 3:
            return "PUT /_ilm/policy/<name> takes one policy name"
        found = await get(f"/_ilm/policy/{segments[2]}")
        policy = found.get(segments[2]) if isinstance(found, dict) else None
        in_use = (policy or {}).get("in_use_by") or {}
        using = _patterns(in_use.get("indices")) + _patterns(in_use.get("data_streams"))
        reason = _first(using, refusal)
        if reason is not None:
            return f"ILM policy [{segments[2]}] is in use by what the writer may not write: {reason}"
        return None
    return None
