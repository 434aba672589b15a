"""Index names as Elasticsearch accepts them, checked before the engine sees them."""

from __future__ import annotations

_FORBIDDEN = set('\\/*?"<>| ,#:')
_MAX_BYTES = 255


def index_name_problem(name: str) -> str | None:
    """Why Elasticsearch would refuse ``name`` as an index name, or None if it is fine."""
    if not name:
        return "index name must not be empty"
    if name in (".", ".."):
        return "index name must not be '.' or '..'"
    if name != name.lower():
        return "index name must be lowercase"
    if name[0] in "-_+":
        return "index name must not start with '-', '_' or '+'"
    bad = sorted(set(name) & _FORBIDDEN)
    if bad:
        return "index name must not contain " + " ".join(repr(c) for c in bad)
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "index name must be valid Unicode (it holds an unpaired surrogate)"
    if size > _MAX_BYTES:
        return f"index name must not be longer than {_MAX_BYTES} bytes"
    if name.startswith("."):
        return "index names starting with '.' are reserved for hidden and system indices"
    return None
