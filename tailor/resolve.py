"""From what a client asked for to the sid it streams: register, or describe and re-register.

Over WAMP, through whichever beater the router picks; every failure is the
HTTP error the contract names (400 invalid query or index, 404 unknown sid,
503 engine or router away, with Retry-After).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime

from common import names
from common.http import HTTPError
from common.query.identity import InvalidQuery, normalize_query, sid_for
from common.wamp import RouterUnavailable, SessionHolder
from tailor.subscriptions import SubscriptionHub


@dataclass(frozen=True)
class Resolved:
    """The sid a stream subscribes to, and the (index, query) it stands for."""

    sid: str
    index: str
    query: str | dict[str, Any]


def wamp_error(exc: Exception) -> HTTPError:
    """A failed register/describe call as the HTTP error the contract names."""
    if isinstance(exc, ApplicationError):
        reason = str(exc.args[0]) if exc.args else exc.error
        if exc.error == names.INVALID_QUERY:
            return HTTPError(400, "invalid_query", reason)
        if exc.error == names.INVALID_INDEX:
            return HTTPError(400, "invalid_index", reason)
        if exc.error == names.NO_SUCH_QUERY:
            return HTTPError(404, "no_such_query", reason)
        if exc.error == names.UNAVAILABLE:
            return HTTPError(503, "unavailable", reason)
        if exc.error == "wamp.error.no_such_procedure":
            return HTTPError(503, "unavailable", "no beater is registered with the router; retry later")
        return HTTPError(503, "unavailable", f"router answered {exc.error}: {reason}")
    return HTTPError(503, "unavailable", f"router call failed: {exc.__class__.__name__}: {exc}")


def sid_changed(asked: str, registered: str, index: str) -> HTTPError:
    """``s=<sid>`` whose stored query now registers as another sid: nothing publishes to the one asked for."""
    return HTTPError(
        404,
        "no_such_query",
        f"sid {asked} is stored for a query on {index!r} that now registers as sid {registered} "
        f"(the query store canonicalises it differently); tail s={registered}, or i= and q= again",
        registered_as=registered,
    )


class Resolver:
    """Turns a request's ``s=`` or ``i=``/``q=`` into a live sid."""

    def __init__(
        self, wamp: SessionHolder, hub: SubscriptionHub, clock: IReactorTime, timeout: float, retry_after: int
    ) -> None:
        self.wamp = wamp
        self.hub = hub
        self.clock = clock
        self.timeout = timeout
        self.retry_after = retry_after

    def unavailable(self, reason: str) -> HTTPError:
        return HTTPError(503, "unavailable", reason, headers={"Retry-After": str(self.retry_after)})

    async def _call(self, procedure: str, *args: Any) -> Any:
        try:
            session = self.wamp.require()
        except RouterUnavailable as exc:
            raise self.unavailable(str(exc)) from None
        d = session.call(procedure, *args)
        d.addTimeout(self.timeout, self.clock)
        try:
            return await d
        except CancelledError:
            raise  # the client went away: nothing to answer
        except Exception as exc:
            err = wamp_error(exc)
            if err.status == 503:
                err.headers["Retry-After"] = str(self.retry_after)
            raise err from None

    async def resolve(
        self, sid: str | None, index: str | None, query: str | dict[str, Any] | None
    ) -> Resolved:
        """Registered (or looked up by sid) and active.

        A sid this tailor already subscribes to is registered and active (it
        has a subscriber: us), so its clients skip the round trip through the
        beater: opening a thousand tails of one query costs one registration.
        """
        if sid is None:
            assert index is not None
            assert query is not None
            held = self.hub.get(sid_for(index, query))
            if held is not None and held.described is not None:
                return Resolved(held.sid, index, query)
            registered = await self._call(names.REGISTER_QUERY, index, query)
            return Resolved(str(registered), index, query)
        held = self.hub.get(sid)
        if held is not None and held.described is not None:
            return Resolved(sid, *held.described)
        found = await self._call(names.DESCRIBE_QUERY, sid)
        try:
            index, query = str(found["index"]), normalize_query(found["query"])
        except (KeyError, TypeError, InvalidQuery) as exc:
            raise self.unavailable(f"describe_query answered something unusable: {exc}") from None
        # Registering the described query again marks it active before we
        # subscribe, so a query idle for a while is percolated again from the
        # first hit on. The stored query is canonical, so it registers as the
        # same sid, unless the store's canonical form changed since: then the
        # hits go to the other sid, and streaming the one asked for would
        # silently carry nothing (or another's).
        registered = str(await self._call(names.REGISTER_QUERY, index, query))
        if registered != sid:
            raise sid_changed(sid, registered, index)
        return Resolved(sid, index, query)
