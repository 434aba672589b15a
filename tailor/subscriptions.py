"""One WAMP subscription per sid, shared by every client tailing it.

The router pays per subscriber session, and a tailor may serve thousands of
clients on a handful of queries: so each sid is subscribed once per process
and its events fanned out to the clients (listeners) in arrival order. The
last listener leaving unsubscribes at once, except that a departing SSE
client may ask the subscription to linger a little, so that its browser's
automatic reconnect resumes from the history instead of finding it gone.

Every hit gets a sequence number within the subscription's *epoch* (a random
token per subscribe); the last ``history`` hits are kept so that SSE clients
resume with Last-Event-ID (``<epoch>:<seq>``) with no gap and no duplicate.

A lost router session takes every subscription with it. Streams that can
say so (NDJSON, SSE) wait for the session to come back (``router_wait``
seconds at most): then each sid is subscribed again, in a new epoch, and its
clients get a *gap notice* where the hits published meanwhile would be.
Others (JSON, streams not yet started) end at once with an ``"error"``.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from autobahn.wamp.interfaces import ISession
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from common.hits import Hit
from common.names import topic_for
from common.wamp import SessionHolder

log = Logger()


class SequencedHit(NamedTuple):
    """A live hit and its sequence number in its subscription's epoch (the SSE event id)."""

    seq: int
    hit: Hit


def _as_is(hit: Hit) -> Hit:
    return hit


class Listener(Protocol):
    """A client of a shared subscription."""

    def deliver(self, entries: Sequence[SequencedHit]) -> None:
        """New hits, in order; called on the reactor thread as they arrive."""

    def fail(self, error: str, reason: str) -> None:
        """The subscription is gone (router lost): end the stream with this error."""

    @property
    def bridges_gaps(self) -> bool:
        """Whether the stream outlives a router loss, to carry a gap notice instead."""

    def gap(self, info: dict[str, Any]) -> None:
        """Hits may be missing here (router lost and back): say so in the stream."""


class SubscribeFailed(Exception):
    """The router refused or could not take the subscription (HTTP 503)."""


@dataclass
class Resume:
    """Where an SSE client picks up: hits to replay, and a gap notice if some are lost."""

    replay: list[SequencedHit]
    gap: dict[str, Any] | None = None


def plan_resume(last_event_id: str, epoch: str, next_seq: int, history: Sequence[SequencedHit]) -> Resume:
    """What a client that saw ``last_event_id`` has missed, given the subscription's state.

    Pure, so every case is unit tested: same epoch and covered by history →
    replay exactly the rest; same epoch but history too short → gap with the
    count missed, then all history; unknown epoch or id → gap, missed unknown.
    """
    given_epoch, _, raw_seq = last_event_id.partition(":")
    try:
        seq = int(raw_seq)
    except ValueError:
        seq = -1
    if given_epoch != epoch or not 0 <= seq < next_seq:
        return Resume(
            [],
            {
                "last_event_id": last_event_id,
                "missed": None,
                "reason": "the tailor has no history for this event id (restarted, resubscribed, "
                "or another tailor); hits since then may be missing",
            },
        )
    first_kept = history[0][0] if history else next_seq
    if seq + 1 >= first_kept:
        return Resume([e for e in history if e[0] > seq])
    missed = first_kept - (seq + 1)
    return Resume(
        list(history),
        {
            "last_event_id": last_event_id,
            "missed": missed,
            "reason": f"{missed} hits fell out of the tailor's history before the reconnect",
        },
    )


@dataclass(eq=False)
class SharedSubscription:
    """The state of one sid in this process."""

    sid: str
    history_size: int
    #: Turns a received hit into what listeners get (the app passes the
    #: wire format's encode-once hit); the hub itself knows no format.
    prepare: Callable[[Hit], Hit] = _as_is
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    next_seq: int = 1
    listeners: set[Listener] = field(default_factory=set)
    history: deque[SequencedHit] = field(init=False)
    wamp_subscription: Any = None
    linger_call: IDelayedCall | None = None
    dropped: bool = False
    #: Only SSE clients resume: a sid that never had one keeps no history.
    keep_history: bool = False
    #: (index, query) the sid stands for, once a client resolved it: later
    #: clients of the sid skip the register/describe round trip.
    described: tuple[str, Any] | None = None
    #: Told, per listener and event, the seconds from the event's arrival to its hand-over (metrics).
    on_delivered: Callable[[float], None] | None = None
    _ready: bool = False
    _error: Failure | None = None
    _waiters: list[Deferred[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}:{seq}"

    def new_epoch(self) -> None:
        """Subscribed again after a gap: old event ids no longer resume without one."""
        self.epoch = secrets.token_hex(4)
        self.history.clear()
        self._ready, self._error = False, None

    def on_event(self, *hits: Hit, **_details: Any) -> None:
        """The WAMP event handler: number, remember and fan out the hits (each encoded once for all)."""
        entries: list[SequencedHit] = []
        prepare = self.prepare
        for hit in hits:
            entries.append(SequencedHit(self.next_seq, prepare(hit)))
            self.next_seq += 1
        if self.keep_history:
            self.history.extend(entries)
        arrived = time.perf_counter()
        for listener in list(self.listeners):
            # A listener may leave (limit reached) while we fan out.
            if listener in self.listeners:
                try:
                    listener.deliver(entries)
                except Exception:
                    # One broken client must not cost the others their hits.
                    log.failure("subscription.deliver_failed", sid=self.sid)
                if self.on_delivered is not None:
                    self.on_delivered(time.perf_counter() - arrived)

    def resume(self, last_event_id: str) -> Resume:
        return plan_resume(last_event_id, self.epoch, self.next_seq, self.history)

    def when_ready(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self._error is not None:
            d.errback(self._error)
        elif self._ready:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d

    def settle(self, error: Failure | None = None) -> None:
        self._ready, self._error = error is None, error
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if d.called:  # cancelled: its client went away while we subscribed
                continue
            if error is None:
                d.callback(None)
            else:
                d.errback(error)


class SubscriptionHub:
    """All shared subscriptions of this tailor, keyed by sid."""

    def __init__(
        self,
        wamp: SessionHolder,
        clock: IReactorTime,
        history_size: int,
        sse_linger: float,
        router_wait: float = 60.0,
        prepare: Callable[[Hit], Hit] = _as_is,
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

    async def join(self, sid: str, listener: Listener, history: bool = False) -> SharedSubscription:
        """Add ``listener`` to the sid's subscription, subscribing on first use.

        Returns once the router confirmed the subscription; from then on the
        listener receives every hit. ``history``: start keeping the last hits
        for resumes (SSE). Raises RouterUnavailable / SubscribeFailed.
        """
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
        try:
            await sub.when_ready()
        except BaseException:
            # Refused, or the client went away meanwhile (cancelled): the
            # last one out unsubscribes, as on any leave.
            self.leave(sid, listener)
            raise
        return sub

    def _subscribe(
        self, session: ISession, sub: SharedSubscription, gap: dict[str, Any] | None = None
    ) -> None:
        async def run() -> None:
            pending = self._unsubscribing.get(sub.sid)
            if pending is not None:
                # Let an unsubscribe of the same topic reach the router first.
                done: Deferred[None] = Deferred()
                pending.addBoth(lambda r: (done.callback(None), r)[1])
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
                    listener.fail("router_unavailable", reason)

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
                    listener.fail("router_unavailable", reason)
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
                listener.fail("router_unavailable", f"{reason}; not back within {self.router_wait:g}s")

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
