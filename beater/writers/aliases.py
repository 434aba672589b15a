"""Where a write through an alias lands: the alias's write index, asked of the engine, briefly cached.

A writer of ``logs-*`` may write ``logs-current``; if that is an alias whose
write index is ``payroll-2026``, the document would land outside the
writer's targets. So every name a write names is resolved before the write
is let through: the engine is asked ``GET /_alias/<names>`` once for the
distinct names of a request, and the answer is kept ``ttl`` seconds (a
shipper writes through the same alias request after request).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote

from twisted.internet.interfaces import IReactorTime

from beater.writers.kept_answers import KeptAnswers

#: ``get(path) -> (status, body)``: one GET to the engine.
Get = Callable[[str], Awaitable[tuple[int, bytes]]]
#: Names remembered at most; past this the cache starts afresh.
CACHE_MAX = 10_000


def write_indices(answer: Any) -> dict[str, str]:
    """``alias -> the index a write through it lands in`` from a ``GET /_alias`` answer.

    The member marked ``is_write_index``, else the only member; an alias of
    several indices without a write index takes no writes (the engine
    refuses them), and is mapped to all its members joined, so that every
    one of them must be the writer's.
    """
    members: dict[str, list[str]] = {}
    write: dict[str, str] = {}
    if not isinstance(answer, dict):
        return {}
    for index, body in answer.items():
        aliases = body.get("aliases") if isinstance(body, dict) else None
        if not isinstance(aliases, dict):
            continue
        for alias, spec in aliases.items():
            members.setdefault(alias, []).append(index)
            if isinstance(spec, dict) and spec.get("is_write_index"):
                write[alias] = index
    for alias, indices in members.items():
        write.setdefault(alias, ",".join(sorted(indices)))
    return write


class WriteAliases:
    """Resolves the names of a write to the indices behind them."""

    def __init__(self, get: Get, clock: IReactorTime, ttl: float = 2.0) -> None:
        self.get = get
        #: name -> the index or indices a write through it lands in (None: it is no alias)
        self.kept: KeptAnswers[str | None] = KeptAnswers(self._ask, None, clock, ttl, CACHE_MAX)

    async def _ask(self, names: list[str]) -> dict[str, str | None]:
        path = "/_alias/" + quote(",".join(names), safe=",*") + "?ignore_unavailable=true"
        status, body = await self.get(path)
        if status not in (200, 404):
            raise LookupError(f"the engine answered {status} to GET {path}")
        return dict(write_indices(json.loads(body or b"{}")))

    async def resolve(self, names: Iterable[str]) -> dict[str, str]:
        """``name -> what a write through it lands in``, for the names that are aliases."""
        found = await self.kept.of(n for n in names if not n.startswith("<"))
        return {n: target for n, target in found.items() if target is not None}
