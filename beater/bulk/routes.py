"""Which requests of the engine's API the beater serves: bulk writes, and the start-up requests it passes through.

Decided from the method and the path alone, so that a request's body limit
is known before its body is read (``beater/sites.py``).
"""

from __future__ import annotations

#: ``(method, first segment)`` of the start-up requests passed through; ``None``: the root.
_PASSTHROUGH: dict[str | None, frozenset[str]] = {
    None: frozenset({"GET", "HEAD"}),
    "_template": frozenset({"GET", "HEAD", "PUT"}),
    "_index_template": frozenset({"GET", "HEAD", "PUT"}),
    "_component_template": frozenset({"GET", "HEAD", "PUT"}),
    "_ilm": frozenset({"GET", "HEAD", "PUT"}),
    "_license": frozenset({"GET"}),
    "_cluster": frozenset({"GET"}),
    "_nodes": frozenset({"GET"}),
    "_xpack": frozenset({"GET"}),
    # libbeat's ILM set-up: does the write alias exist (a name inside the writer's targets)?
    "_alias": frozenset({"GET", "HEAD"}),
}


def route(method: str, segments: list[str]) -> str | None:
    """``"bulk"``, ``"passthrough"``, or None (not served here) for a request."""
    if segments and segments[-1] == "_bulk" and len(segments) <= 2:
        if len(segments) == 1 or not segments[0].startswith("_"):
            return "bulk" if method in ("POST", "PUT") else "bulk_method"
        return None
    first = segments[0] if segments else None
    if len(segments) == 1 and first is not None and not first.startswith("_"):
        # An index created with its write alias (libbeat's ILM set-up: ``PUT /<name-{now/d}-000001>``),
        # and whether a name exists (Logstash's ILM set-up: ``HEAD /<rollover alias>``).
        return "passthrough" if method in ("PUT", "HEAD") else None
    if first == "_alias" and len(segments) != 2:
        return None
    if first == "_ilm" and segments[1:2] != ["policy"]:
        return None
    if first == "_cluster" and segments[1:2] != ["health"]:
        return None
    allowed = _PASSTHROUGH.get(first)
    if allowed is None:
        return None
    return "passthrough" if method in allowed else "passthrough_method"
