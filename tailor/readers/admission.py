"""A request's target resolved for its reader: who asks, may they read it, and what it costs them.

The gate (tailor/readers/gate.py) is asked around the resolver
(tailor/queries/resolve.py): 401/403/429 before anything is resolved
(``i=``), 404 after (``s=`` of an unreadable sid). The indices behind every
alias a target covers must be the reader's too.
"""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from common.access.readers import Identity
from common.aliases import AliasLookup
from common.contract import INVALID_INDEX, NOT_AUTHORIZED
from common.engine import EngineRejected
from common.http import HTTPError
from tailor.queries.params import query_args
from tailor.queries.resolve import Resolved, Resolver
from tailor.readers.gate import ReaderGate


class ReaderAdmission:
    """Resolves tails' and counts' targets for their readers, through the gate."""

    def __init__(self, gate: ReaderGate, aliases: AliasLookup, resolver: Resolver, own_prefix: str) -> None:
        self.gate = gate
        #: ``aliases(target, own_prefix)``: the indices behind the aliases a target covers
        self.aliases = aliases
        self.resolver = resolver
        self.own_prefix = own_prefix

    async def resolve(
        self, request: Request, sid: str | None, index: str | None, query: Any
    ) -> tuple[Resolved, Identity]:
        """401/403/429 before anything is resolved (``i=``), 404 after (``s=`` of an unreadable
        sid); the caller's slot is held until the request finishes, and what resolving sends
        on (registrations, lookups) is charged to it."""
        gate = self.gate
        tokens = query_args(request).get("token")
        identity = gate.identify(request, tokens[-1] if tokens else None)
        if index is not None:
            gate.check(identity, index)
            await self._check_aliases(identity, index)
        key = gate.key(identity, request)
        gate.hold_tail(key)
        released = False

        def release(_: Any = None) -> None:
            nonlocal released
            if not released:
                released = True
                gate.release_tail(key)

        try:
            target = await self.resolver.resolve(sid, index, query, gate.charges(key))
            if sid is not None:
                gate.check(identity, target.index, as_missing_sid=sid)
                await self._check_aliases(identity, target.index, as_missing_sid=sid)
        except BaseException:
            release()
            raise
        request.notifyFinish().addBoth(release)
        return target, identity

    async def _check_aliases(
        self, identity: Identity, target: str, as_missing_sid: str | None = None
    ) -> None:
        """The indices behind every alias ``target`` covers must be the reader's too (403, or 404)."""
        try:
            behind = await self.aliases(target, self.own_prefix)
        except EngineRejected as exc:  # EngineUnavailable, a RetryLater, is the HTTP face's: 503
            raise HTTPError.of(INVALID_INDEX, exc.reason) from None
        if not behind:
            return
        try:
            self.gate.check(identity, ",".join(behind), as_missing_sid=as_missing_sid)
        except HTTPError as refused:
            if refused.status != NOT_AUTHORIZED.status:
                raise
            # Not naming the indices behind: they are what the reader may not know of.
            raise HTTPError.of(
                NOT_AUTHORIZED,
                f"{target!r} leads through aliases to indices {identity.name} may not read",
            ) from None
