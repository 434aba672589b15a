"""What a read target reaches through aliases: the concrete indices behind the aliases it covers.

A target is judged by what it reaches, not only by its name: an alias (or a
pattern matching alias names) may lead to indices outside a reader's
targets. Both places that admit a reader's target ask this: the beater for
WAMP callers (``beater/queries/reader_calls.py``), the tailor for HTTP ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from common.access.scopes import OWN_PREFIX
from common.engine import Engine

#: ``lookup(target, own_prefix)``: what :func:`alias_members` answers (a test may answer it otherwise).
AliasLookup = Callable[[str, str], Awaitable[list[str]]]


async def alias_members(engine: Engine, target: str, own_prefix: str = OWN_PREFIX) -> list[str]:
    """The concrete indices behind the aliases ``target`` covers (none for an index or data stream).

    estrom's own aliases (one per target on the shared percolator index,
    named with ``own_prefix``) are left out: a search never reaches them
    (``common.readers.searchable``). An alias of another name that leads to
    estrom's own indices is kept, and refused as they are.
    """

    def read(es: Any) -> Any:
        return es.indices.get_alias(name=target, ignore_unavailable=True, allow_no_indices=True, ignore=404)

    found = await engine.run(read)
    if not isinstance(found, dict):
        return []
    return sorted(
        index
        for index, body in found.items()
        if isinstance(body, dict) and any(not a.startswith(own_prefix) for a in body.get("aliases") or {})
    )
