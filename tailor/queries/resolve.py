"""From what a client asked for to the sid it streams: register, or describe and re-register.

Over WAMP, through whichever beater the router picks; every failure is the
HTTP error the contract names (400 invalid query or index, 404 unknown sid),
or a RetryLater (common/errors.py) when engine or router is away, which the
HTTP face answers 503 with Retry-After.

What the caller pays: each registration sent on takes a token of its
registration bucket, each ``s=`` lookup sent on one of its lookup bucket
(``Charges``; over either, 429). Requests for a query whose registration
(or a sid whose lookup) is already on its way wait for that one: a hundred
tails of one query opened at once send one registration, charged to the
first. A sid the beater just said it does not
know is answered 404 from memory for ``ESTROM_UNKNOWN_SID_TTL`` seconds
(``ExpiringSet``), at no cost to anybody; registering it through this
tailor forgets that at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from common.contract import (
    DESCRIBE_QUERY,
    INVALID_INDEX,
    INVALID_QUERY,
    NO_SUCH_QUERY,
    REGISTER_QUERY,
    UNAVAILABLE,
    WAMP_NO_SUCH_PROCEDURE,
    error_for_uri,
)
from common.errors import RetryLater
from common.expiring_set import ExpiringSet
from common.http import HTTPError
from common.query.identity import InvalidQuery, normalize_query, sid_for
from common.router_tier import RouterTier
from common.wamp import call_within
from tailor.subscriptions.partitioned import PartitionedHub
from tailor.subscriptions.shared import SharedSubscription


@dataclass(frozen=True)
class Resolved:
    """The sid a stream subscribes to, and the (index, query) it stands for."""

    sid: str
    index: str
    query: str | dict[str, Any]


#: The refusals of register/describe that are the client's to hear; any other error the router
#: answers is the tailor's trouble, not the client's: unavailable, retry later.
CLIENTS_REFUSALS = (INVALID_QUERY, INVALID_INDEX, NO_SUCH_QUERY)


def wamp_error(exc: Exception) -> HTTPError | RetryLater:
    """A failed register/describe call as the HTTP error the contract names, or a RetryLater."""
    if isinstance(exc, ApplicationError):
        reason = str(exc.args[0]) if exc.args else exc.error
        error = error_for_uri(exc.error)
        if error in CLIENTS_REFUSALS:
            return HTTPError.of(error, reason)
        if error == UNAVAILABLE:
            return RetryLater(reason)
        if exc.error == WAMP_NO_SUCH_PROCEDURE:
            return RetryLater("no beater is registered with the router; retry later")
        return RetryLater(f"router answered {exc.error}: {reason}")
    return RetryLater(f"router call failed: {exc.__class__.__name__}: {exc}")


def sid_changed(asked: str, registered: str, index: str) -> HTTPError:
    """``s=<sid>`` whose stored query now registers as another sid: nothing publishes to the one asked for."""
    return HTTPError.of(
        NO_SUCH_QUERY,
        f"sid {asked} is stored for a query on {index!r} that now registers as sid {registered} "
        f"(the query store canonicalises it differently); tail s={registered}, or i= and q= again",
        registered_as=registered,
    )


class Charges(Protocol):
    """What one caller's calls cost it: each raises (an HTTPError 429) when it may not make one."""

    def registration(self) -> None: ...

    def describe(self) -> None: ...


class _Shared:
    """One call several requests wait for; it is cancelled only when all of them left."""

    def __init__(self, done: Callable[[], object]) -> None:
        self.work: Deferred[Any] = Deferred()
        self.waiters: list[Deferred[Any]] = []
        self._done = done

    def start(self, work: Deferred[Any]) -> None:
        """Wait for ``work`` (once the first waiter joined: it may have landed already)."""
        self.work = work
        work.addBoth(self._landed)

    def join(self) -> Deferred[Any]:
        waiter: Deferred[Any] = Deferred(self._leave)
        self.waiters.append(waiter)
        return waiter

    def _leave(self, waiter: Deferred[Any]) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
        if not self.waiters and not self.work.called:
            self.work.cancel()

    def _landed(self, result: Any) -> None:
        self._done()
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)


def no_such_query(sid: str) -> HTTPError:
    return HTTPError.of(NO_SUCH_QUERY, f"no query with sid {sid!r}")


class Resolver:
    """Turns a request's ``s=`` or ``i=``/``q=`` into a live sid."""

    def __init__(
        self,
        wamp: RouterTier,
        hub: PartitionedHub,
        clock: IReactorTime,
        timeout: float,
        unknown: ExpiringSet | None = None,
        on_lookup: Callable[[str], None] | None = None,
    ) -> None:
        self.wamp = wamp
        self.hub = hub
        self.clock = clock
        self.timeout = timeout
        #: sids the beater said it does not know, a moment ago
        self.unknown = unknown if unknown is not None else ExpiringSet(0, 0, clock.seconds)
        #: told each ``s=`` lookup's outcome: found, unknown, remembered (answered from ``unknown``)
        self.on_lookup = on_lookup or (lambda _outcome: None)
        #: calls on their way, by (procedure, sid), that later requests wait for
        self._shared: dict[tuple[str, str], _Shared] = {}

    async def subscribed(
        self, target: Resolved, joining: Awaitable[SharedSubscription]
    ) -> SharedSubscription:
        """The target's shared subscription once the router confirmed it (a RetryLater if it did
        not: RouterUnavailable, SubscribeFailed); the sid is then known to stand for the target,
        so later clients of it skip the round trip."""
        sub = await joining
        sub.described = (target.index, target.query)
        return sub

    async def _call(self, procedure: str, *args: Any) -> Any:
        session = self.wamp.require()  # RouterUnavailable, a RetryLater, without a session
        try:
            return await call_within(session, self.clock, self.timeout, procedure, *args)
        except CancelledError:
            raise  # the client went away: nothing to answer
        except Exception as exc:
            raise wamp_error(exc) from None

    def _once(self, procedure: str, sid: str, charge: Callable[[], None], *args: Any) -> Deferred[Any]:
        """``procedure(*args)`` about ``sid``, or the same call already on its way (charged once)."""
        key = (procedure, sid)
        shared = self._shared.get(key)
        if shared is not None:
            return shared.join()
        charge()
        shared = self._shared[key] = _Shared(lambda: self._shared.pop(key, None))
        waiter = shared.join()
        shared.start(Deferred.fromCoroutine(self._call(procedure, *args)))
        return waiter

    async def resolve(
        self, sid: str | None, index: str | None, query: str | dict[str, Any] | None, charges: Charges
    ) -> Resolved:
        """Registered (or looked up by sid) and active; what is sent on is charged to the caller.

        A sid this tailor already subscribes to is registered and active (it
        has a subscriber: us), so its clients skip the round trip through the
        beater: opening a thousand tails of one query costs one registration.
        """
        if sid is None:
            assert index is not None
            assert query is not None
            expected = sid_for(index, query)
            held = self.hub.get(expected)
            if held is not None and held.described is not None:
                return Resolved(held.sid, index, query)
            registering = self._once(REGISTER_QUERY, expected, charges.registration, index, query)
            registered = str(await registering)
            self.unknown.discard(registered)
            return Resolved(registered, index, query)
        held = self.hub.get(sid)
        if held is not None and held.described is not None:
            return Resolved(sid, *held.described)
        if sid in self.unknown:
            self.on_lookup("remembered")
            raise no_such_query(sid)
        try:
            found = await self._once(DESCRIBE_QUERY, sid, charges.describe, sid)
        except HTTPError as err:
            if err.status == 404:
                self.on_lookup("unknown")
                self.unknown.add(sid)
            raise
        self.on_lookup("found")
        try:
            index, query = str(found["index"]), normalize_query(found["query"])
        except (KeyError, TypeError, InvalidQuery) as exc:
            raise RetryLater(f"describe_query answered something unusable: {exc}") from None
        # Registering the described query again marks it active before we
        # subscribe, so a query idle for a while is percolated again from the
        # first hit on. The stored query is canonical, so it registers as the
        # same sid, unless the store's canonical form changed since: then the
        # hits go to the other sid, and streaming the one asked for would
        # silently carry nothing (or another's).
        registered = str(await self._once(REGISTER_QUERY, sid, charges.registration, index, query))
        if registered != sid:
            raise sid_changed(sid, registered, index)
        return Resolved(sid, index, query)
