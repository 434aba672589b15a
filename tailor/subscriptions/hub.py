"""One WAMP subscription per sid, shared by every client tailing it.

The router pays per subscriber session, and a tailor may serve thousands of
clients on a handful of queries: so each sid is subscribed once per process
and its events fanned out to the clients (listeners) in arrival order. The
last listener leaving unsubscribes at once, except that a departing SSE
client may ask the subscription to linger a little, so that its browser's
automatic reconnect resumes from the history instead of finding it gone.

Each hit is numbered in the subscription's epoch, and the last hits kept for
SSE clients to resume with (tailor/subscriptions/resume.py).

A lost router session takes every subscription with it. Streams that can
say so (NDJSON, SSE) wait for the session to come back (``router_wait``
seconds at most): then each sid is subscribed again, in a new epoch, and its
clients get a *gap notice* where the hits published meanwhile would be.
Others (JSON, streams not yet started) end at once with an ``"error"``.

A listener may have clients of its own: a shared view (tailor/views/view.py)
is one listener for all the tails of one shape. It is told of a router loss
as it happens (``Relay``), so that its tails that cannot wait end at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autobahn.wamp.interfaces import ISession
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from common.contract import ROUTER_UNAVAILABLE, topic_for
from common.errors import RetryLater
from common.hits import Hit
from common.wamp import SessionHolder
from tailor.subscriptions.shared import Listener, Relay, SharedSubscription, as_is

log = Logger()


class SubscribeFailed(RetryLater):
    """The router refused or could not take the subscription: retry later (HTTP 503)."""


class SubscriptionHub:
    """All shared subscriptions of this tailor, keyed by sid."""

    def __init__(
        self,
        wamp: SessionHolder,
        clock: IReactorTime,
        history_size: int,
        sse_linger: float,
        router_wait: float = 60.0,
        prepare: Callable[[Hit], Hit] = as_is,
    ) -> None:
        self.wamp = wamp
        self.prepare = prepare
        #: Given to each subscription (SharedSubscription.on_delivered).
        self.on_delivered: Callable[[float], None] | None = None
        self.clock = clock
        self.history_size = history_size
        self.sse_linger = sse_linger
        self.router_wait = router_wait
        self._subs: dict[str, SharedSubscription] = {}
        self._unsubscribing: dict[str, Deferred[Any]] = {}
        self._lost_at: float | None = None
        self._give_up_call: IDelayedCall | None = None
        wamp.when_joined(self.rejoined)

    def __len__(self) -> int:
        return len(self._subs)

    def get(self, sid: str) -> SharedSubscription | None:
        return self._subs.get(sid)

    def require(self, sid: str) -> ISession:
        """The session ``sid`` is subscribed through (RouterUnavailable without one)."""
        return self.wamp.require()

    async def join(self, sid: str, listener: Listener, history: bool = False) -> SharedSubscription:
        """Add ``listener`` to the sid's subscription, subscribing on first use.

        Returns once the router confirmed the subscription; from then on the
        listener receives every hit. ``history``: start keeping the last hits
        for resumes (SSE). Raises RouterUnavailable / SubscribeFailed.
        """
        sub = self.attach(sid, listener, history)
        try:
            await sub.when_ready()
        except BaseException:
            # Refused, or the client went away meanwhile (cancelled): the
            # last one out unsubscribes, as on any leave.
            self.leave(sid, listener)
            raise
        return sub

    def attach(self, sid: str, listener: Listener, history: bool = False) -> SharedSubscription:
        """``join`` without the wait: for a listener whose own clients each wait on ``when_ready``
        (a shared view). A refused subscription lets go of its listeners itself."""
        session = self.wamp.require()
        sub = self._subs.get(sid)
        if sub is None:
            sub = SharedSubscription(sid, self.history_size, self.prepare, on_delivered=self.on_delivered)
            self._subs[sid] = sub
            self._subscribe(session, sub)
        if sub.linger_call is not None and sub.linger_call.active():
            sub.linger_call.cancel()
        sub.linger_call = None
        sub.keep_history = sub.keep_history or (history and self.history_size > 0)
        sub.listeners.add(listener)
        return sub

    def _subscribe(
        self, session: ISession, sub: SharedSubscription, gap: dict[str, Any] | None = None
    ) -> None:
        async def run() -> None:
            pending = self._unsubscribing.get(sub.sid)
            if pending is not None:
                # Let an unsubscribe of the same topic reach the router first.
                done: Deferred[None] = Deferred()

                def unsubscribed(result: object) -> object:
                    done.callback(None)
                    return result

                pending.addBoth(unsubscribed)
                await done
            subscription = await session.subscribe(sub.on_event, topic_for(sub.sid))
            sub.wamp_subscription = subscription
            if sub.dropped:  # every listener left while we were subscribing
                self._unsubscribe(sub)
            log.debug("subscription.added", sid=sub.sid, epoch=sub.epoch)

        def failed(failure: Failure) -> None:
            if gap is not None and self._lost_at is not None and self._subs.get(sub.sid) is sub:
                # The router left again while we subscribed anew: the streams
                # keep waiting for the next rejoin (or router_wait), as after the first loss.
                log.info("subscription.retry_after_rejoin", sid=sub.sid, error=failure.getErrorMessage())
                return
            log.warn("subscription.failed", sid=sub.sid, error=failure.getErrorMessage())
            if self._subs.get(sub.sid) is sub:
                del self._subs[sub.sid]
            reason = f"router refused the subscription: {failure.getErrorMessage()}"
            listeners = list(sub.listeners)
            sub.listeners.clear()
            sub.settle(Failure(SubscribeFailed(reason)))
            if gap is not None:  # streams that waited through a router loss
                for listener in listeners:
                    listener.fail(ROUTER_UNAVAILABLE, reason)

        def done(_: Any) -> None:
            sub.settle()
            if gap is not None:
                for listener in list(sub.listeners):
                    listener.gap(gap)

        ensureDeferred(run()).addCallbacks(done, failed)

    def leave(self, sid: str, listener: Listener, linger: bool = False) -> None:
        """Remove ``listener``; the last one out unsubscribes (after the SSE linger if asked)."""
        sub = self._subs.get(sid)
        if sub is None or listener not in sub.listeners:
            return
        sub.listeners.discard(listener)
        if sub.listeners:
            return
        if linger and self.sse_linger > 0 and sub.wamp_subscription is not None:
            sub.linger_call = self.clock.callLater(self.sse_linger, self._drop, sub)
            return
        self._drop(sub)

    def _drop(self, sub: SharedSubscription) -> None:
        if sub.listeners or sub.dropped:
            return
        sub.dropped = True
        sub.linger_call = None
        if self._subs.get(sub.sid) is sub:
            del self._subs[sub.sid]
        if sub.wamp_subscription is not None:
            self._unsubscribe(sub)

    def _unsubscribe(self, sub: SharedSubscription) -> None:
        subscription, sub.wamp_subscription = sub.wamp_subscription, None
        if subscription is None or not subscription.active:
            return
        session = self.wamp.session
        if session is None or not session.is_attached():
            return  # the router forgets a lost session's subscriptions itself
        d = subscription.unsubscribe()
        self._unsubscribing[sub.sid] = d

        def done(result: Any) -> None:
            if self._unsubscribing.get(sub.sid) is d:
                del self._unsubscribing[sub.sid]
            if isinstance(result, Failure):
                log.debug("subscription.unsubscribe_failed", sid=sub.sid, error=result.getErrorMessage())
            else:
                log.debug("subscription.removed", sid=sub.sid)

        d.addBoth(done)

    def router_lost(self, reason: str) -> None:
        """The session is gone and every subscription with it.

        Streams that bridge gaps keep their sids here, unsubscribed, until
        the rejoin (or ``router_wait``); every other listener ends now.
        """
        if self._lost_at is not None:
            return  # "leave" and then "disconnect": one loss
        self._lost_at = self.clock.seconds()
        self._unsubscribing.clear()
        for sub in list(self._subs.values()):
            sub.wamp_subscription = None
            if sub.linger_call is not None and sub.linger_call.active():
                sub.linger_call.cancel()
            sub.linger_call = None
            if not sub._ready and sub._error is None:
                sub.settle(Failure(SubscribeFailed(reason)))
            for listener in list(sub.listeners):
                if not listener.bridges_gaps:
                    sub.listeners.discard(listener)
                    listener.fail(ROUTER_UNAVAILABLE, reason)
                elif isinstance(listener, Relay):  # a view: its streams that cannot wait end now
                    listener.router_lost(ROUTER_UNAVAILABLE, reason)
            sub._ready = False
            if not sub.listeners:
                self._drop(sub)
        if self._subs:
            log.info("subscriptions.waiting_for_router", subscriptions=len(self._subs), wait=self.router_wait)
            self._give_up_call = self.clock.callLater(self.router_wait, self._give_up, reason)

    def _give_up(self, reason: str) -> None:
        """The router stayed away too long: end the streams that waited for it."""
        self._give_up_call = None
        subs, self._subs = list(self._subs.values()), {}
        for sub in subs:
            sub.dropped = True
            listeners = list(sub.listeners)
            sub.listeners.clear()
            for listener in listeners:
                listener.fail(ROUTER_UNAVAILABLE, f"{reason}; not back within {self.router_wait:g}s")

    def rejoined(self, session: ISession) -> None:
        """A new session: subscribe again every sid whose streams waited, with a gap notice."""
        lost_at, self._lost_at = self._lost_at, None
        if self._give_up_call is not None and self._give_up_call.active():
            self._give_up_call.cancel()
        self._give_up_call = None
        if lost_at is None:
            return
        seconds = round(self.clock.seconds() - lost_at, 3)
        for sub in list(self._subs.values()):
            gap = {
                "last_event_id": sub.event_id(sub.last_seq),
                "missed": None,
                "seconds": seconds,
                "reason": "the tailor lost its connection to the router; hits published "
                "until it subscribed again are missing",
            }
            sub.new_epoch()
            self._subscribe(session, sub, gap)
        if self._subs:
            log.info("subscriptions.resubscribing", subscriptions=len(self._subs), gap_seconds=seconds)
