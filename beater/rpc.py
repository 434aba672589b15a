"""The beater's WAMP procedures: ``register_query`` and ``describe_query``.

Registered shared (round-robin), so any number of beaters serve them.
"""

from __future__ import annotations

from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.interfaces import ISession
from autobahn.wamp.types import RegisterOptions
from twisted.logger import Logger

from beater.store import QueryStore
from common import names
from common.engine import EngineRejected, EngineUnavailable
from common.metrics import Metrics
from common.query.identity import InvalidQuery
from common.query.targets import InvalidTarget, target_problem

log = Logger()


class QueryProcedures:
    def __init__(self, store: QueryStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    async def register_query(self, index: Any = None, query: Any = None) -> str:
        if not isinstance(index, str):
            raise ApplicationError(names.INVALID_INDEX, "index must be a string")
        problem = target_problem(index)
        if problem:
            raise ApplicationError(names.INVALID_INDEX, problem)
        try:
            sid = await self.store.register(index, query)
        except InvalidTarget as exc:
            raise ApplicationError(names.INVALID_INDEX, str(exc)) from None
        except InvalidQuery as exc:
            raise ApplicationError(names.INVALID_QUERY, str(exc)) from None
        except EngineRejected as exc:
            if exc.status == 400:
                raise ApplicationError(names.INVALID_QUERY, exc.reason) from None
            raise ApplicationError(names.UNAVAILABLE, f"engine refused: {exc.reason}") from None
        except EngineUnavailable as exc:
            raise ApplicationError(names.UNAVAILABLE, str(exc)) from None
        self.metrics.inc("queries_registered_total")
        log.debug("query.registered", index=index, sid=sid)
        return sid

    async def describe_query(self, sid: Any = None) -> dict[str, Any]:
        if not isinstance(sid, str) or len(sid) != 16 or any(c not in "0123456789abcdef" for c in sid):
            raise ApplicationError(names.NO_SUCH_QUERY, f"no query with sid {sid!r}")
        try:
            found = await self.store.describe(sid)
        except (EngineUnavailable, EngineRejected) as exc:
            raise ApplicationError(names.UNAVAILABLE, str(exc)) from None
        if found is None:
            raise ApplicationError(names.NO_SUCH_QUERY, f"no query with sid {sid!r}")
        return found

    async def attach(self, session: ISession) -> None:
        shared = RegisterOptions(invoke="roundrobin")
        await session.register(self.register_query, names.REGISTER_QUERY, options=shared)
        await session.register(self.describe_query, names.DESCRIBE_QUERY, options=shared)
