"""The beater's WAMP procedures: ``register_query`` and ``describe_query``.

Registered shared (round-robin), so any number of beaters serve them.

``register_query`` counts the fields a query adds against the budget of the
reader registering it (``beater/store/budget.py``) where the beater knows
the reader: a reader logged in to the router itself (its authid), or, from
a principal that registers on others' behalf (the tailor), the
``principal`` keyword it passes (a reader's name, or
``anonymous@<address>``). An anonymous browser's authid is new with every
connection, so it has no such budget; the target's budget and the
per-query limits hold for everyone.
"""

from __future__ import annotations

from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.interfaces import ISession
from autobahn.wamp.types import RegisterOptions
from twisted.logger import Logger

from beater.queries.reader_calls import PRINCIPAL_ROLES, check_caller
from beater.queries.sid_cache import SidCache
from beater.store import QueryStore
from common.aliases import alias_members
from common.config import Settings
from common.contract import (
    DESCRIBE_QUERY,
    INVALID_INDEX,
    INVALID_QUERY,
    NO_SUCH_QUERY,
    REGISTER_QUERY,
    TARGET_REACH,
    is_sid,
)
from common.engine import EngineRejected
from common.errors import RetryLater
from common.metrics import Metrics
from common.query.identity import InvalidQuery, LimitExceeded
from common.query.targets import InvalidTarget, target_problem
from common.wamp import procedure

log = Logger()

#: The role of a reader logged in to the router itself (authid: its name; router/estrom_router/readers_gate.py).
READER_ROLE = "reader"
#: Longest ``principal`` a trusted caller may name.
_PRINCIPAL_MAX = 256


def principal_of(details: Any, principal: Any) -> str | None:
    """Whose field budget a registration counts against: see the module doc; None for none."""
    role = getattr(details, "caller_authrole", None)
    if role == READER_ROLE:
        authid = getattr(details, "caller_authid", None)
        return authid if isinstance(authid, str) and authid else None
    if role in PRINCIPAL_ROLES and isinstance(principal, str) and 0 < len(principal) <= _PRINCIPAL_MAX:
        return principal
    return None


class QueryProcedures:
    def __init__(self, store: QueryStore, metrics: Metrics, settings: Settings) -> None:
        self.store = store
        self.metrics = metrics
        #: describes through the memory of unknown sids, lookups rationed per caller
        self.sids = SidCache(store, metrics, settings)
        self.session: ISession | None = None

    async def register_query(
        self, index: Any = None, query: Any = None, principal: Any = None, details: Any = None
    ) -> str:
        if not isinstance(index, str):
            raise ApplicationError(INVALID_INDEX.uri, "index must be a string")
        problem = target_problem(index)
        if problem:
            raise ApplicationError(INVALID_INDEX.uri, problem)
        await check_caller(self.session, details, "register", index, self.store.engine, self.store.prefix)
        try:
            sid = await self.store.register(index, query, principal_of(details, principal))
        except InvalidTarget as exc:
            raise ApplicationError(INVALID_INDEX.uri, str(exc)) from None
        except LimitExceeded as exc:
            # A 400 at the tailor, never a 503: the same query will be refused again.
            self.store.events.inc("queries_refused_total", limit=exc.limit)
            log.info("query.refused", index=index, limit=exc.limit)
            raise ApplicationError(INVALID_QUERY.uri, str(exc), limit=exc.limit) from None
        except InvalidQuery as exc:
            raise ApplicationError(INVALID_QUERY.uri, str(exc)) from None
        except EngineRejected as exc:
            if exc.status == 400:
                raise ApplicationError(INVALID_QUERY.uri, exc.reason) from None
            raise RetryLater(f"engine refused: {exc.reason}") from None
        self.sids.registered(sid)
        self.metrics.inc("queries_registered_total")
        log.debug("query.registered", index=index, sid=sid)
        return sid

    async def describe_query(self, sid: Any = None, details: Any = None) -> dict[str, Any]:
        if not is_sid(sid):
            raise ApplicationError(NO_SUCH_QUERY.uri, f"no query with sid {sid!r}")
        try:
            found = await self.sids.describe(sid, lambda: check_caller(self.session, details, "lookup", sid))
        except EngineRejected as exc:
            raise RetryLater(str(exc)) from None
        if found is None:
            raise ApplicationError(NO_SUCH_QUERY.uri, f"no query with sid {sid!r}")
        try:  # readers: a sid whose target the caller may not read does not exist for it
            await check_caller(
                self.session,
                details,
                "describe",
                str(found.get("index")),
                self.store.engine,
                self.store.prefix,
            )
        except ApplicationError:  # a refusal; a RetryLater stays one
            raise ApplicationError(NO_SUCH_QUERY.uri, f"no query with sid {sid!r}") from None
        return found

    async def target_reach(self, target: Any = None, details: Any = None) -> list[str]:
        """The indices behind the aliases ``target`` covers: the router's gate judges live
        subscriptions again with it (principals only: the router refuses browsers this call)."""
        if not isinstance(target, str) or target_problem(target):
            raise ApplicationError(INVALID_INDEX.uri, f"not a read target: {target!r}")
        try:
            return await alias_members(self.store.engine, target, self.store.prefix)
        except EngineRejected as exc:
            raise RetryLater(str(exc)) from None

    async def attach(self, session: ISession, *, front: bool = True) -> None:
        """Serve the procedures on a router node. Readers reach only the front node, and their calls
        are checked with its gate (``check_caller``); other nodes take only principals' calls."""
        if front:
            self.session = session
        shared = RegisterOptions(invoke="roundrobin", details_arg="details")
        await session.register(procedure(self.register_query), REGISTER_QUERY, options=shared)
        await session.register(procedure(self.describe_query), DESCRIBE_QUERY, options=shared)
        await session.register(procedure(self.target_reach), TARGET_REACH, options=shared)
