"""Shared views: one shape of one sid's hits in this tailor, for every tail that asks for it.

Tails of a sid asking for the same ``fields=``, ``delay=`` and ``order_by=``
see the same hits in the same order, so they share the work as they share
the sid's WAMP subscription: one ``SharedView`` per (sid, fields, delay,
order_by) listens to the sid's SharedSubscription, cuts each ``_source``
once (tailor/views/fields.py; ``_index`` and ``_id`` kept), holds and orders
the hits once (tailor/views/order.py), encodes each once, and hands them out
through a numbered fan-out of its own: its SSE tails' event ids are the
view's, and resume against the view's history. A view is made by its first
tail and dropped after its last (after the SSE linger, as the hub does).

A hit released after one with a greater ``order_by`` value is still sent,
with ``"_late": true`` added to it. A view holds at most
``ESTROM_TAILOR_MAX_PENDING`` bytes of hits (what one client may fall
behind); past it, the smallest values go early, in order, never dropped.

Tails with neither fields nor a delay skip all this and listen to the
subscription directly. Sampling (``max_rate=``) is each tail's own
(tailor/views/sampling.py, applied in tailor/tails/stream.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from common.hits import Hit
from tailor.backfill.handover import CutHit, cut
from tailor.queries.params import TailRequest
from tailor.streaming.format import EncodedHit, hit_json
from tailor.subscriptions.partitioned import PartitionedHub
from tailor.subscriptions.resume import SequencedHit
from tailor.subscriptions.shared import Fanout, Listener, SharedSubscription
from tailor.views.fields import Source, compile_fields
from tailor.views.order import OrderBuffer, Released, order_key

#: A release timer may fire a hair before the deadline it was set for.
_TIMER_SLACK = 1e-4

Projection = Callable[[Source], Source]


@dataclass(frozen=True)
class ViewShape:
    """What a view does to its sid's hits; tails of one sid and one shape share a view."""

    fields: tuple[str, ...] | None
    delay: float
    order_by: str

    @classmethod
    def of(cls, tail: TailRequest) -> ViewShape | None:
        """The tail's shape; None when it takes the hits as they come (no view, no cost)."""
        if tail.fields is None and tail.delay <= 0:
            return None
        return cls(tail.fields, tail.delay, tail.order_by)


class ViewStats:
    """Counters views report to; the app wires them to /metrics."""

    def late(self, n: int) -> None: ...

    def early(self, n: int) -> None: ...


class SharedView:
    """One (sid, shape): a listener of the sid's subscription and a fan-out to its own tails."""

    def __init__(
        self,
        sid: str,
        shape: ViewShape,
        clock: IReactorTime,
        *,
        history_size: int,
        max_held_bytes: int,
        project: Projection | None,
        stats: ViewStats,
    ) -> None:
        self.sid, self.shape, self.clock, self.stats = sid, shape, clock, stats
        #: what the view's tails get, numbered in the view's own epoch
        self.feed = Fanout(sid, history_size)
        #: tails that joined the view, or are joining it (only those that joined are in the feed)
        self.members: set[Listener] = set()
        self.buffer: OrderBuffer[EncodedHit] | None = (
            OrderBuffer(shape.delay, max_held_bytes) if shape.delay > 0 else None
        )
        self.linger_call: IDelayedCall | None = None
        #: the sid's subscription, the view one of its listeners (set as the view is made)
        self.subscription: SharedSubscription | None = None
        #: called when the subscription fails the view, so that nobody joins it any more
        self.on_failed: Callable[[SharedView], None] = _ignore
        self._project = project
        self._release_call: IDelayedCall | None = None
        self._stopped = False

    @property
    def held(self) -> int:
        return self.buffer.held if self.buffer is not None else 0

    @property
    def held_bytes(self) -> int:
        return self.buffer.held_bytes if self.buffer is not None else 0

    # -- its tails ---------------------------------------------------------

    def when_joined(self) -> Deferred[SharedSubscription]:
        """The sid's subscription once the router confirmed it (SubscribeFailed if it did not)."""
        sub = self.subscription
        assert sub is not None, "a view is made with its subscription"
        return sub.when_ready().addCallback(lambda _: sub)

    def receive(self, member: Listener, history: bool) -> Fanout:
        """From now on ``member`` gets the view's hits; the fan-out that numbers them.

        Called in the same turn as the caller plans its resume from the
        fan-out's history, so that no hit is both replayed and delivered.
        """
        self.feed.listeners.add(member)
        self.feed.keep_history = self.feed.keep_history or (history and self.feed.history_size > 0)
        return self.feed

    # -- the subscription's listener ---------------------------------------

    def deliver(self, entries: Sequence[SequencedHit]) -> None:
        if self._stopped:
            return
        buffer = self.buffer
        if buffer is None:
            self.feed.fan_out([self._shaped(entry.hit) for entry in entries])
            return
        now = self.clock.seconds()
        released = buffer.due(now)  # overdue ones (a busy reactor) go before the newcomers
        order_by = self.shape.order_by
        for _seq, whole in entries:
            hit = self._shaped(whole)
            # Ordered by the whole source: fields= may leave out the field it orders by.
            released += buffer.add(hit, order_key(whole.get("_source"), order_by), now, len(hit_json(hit)))
        self._release(released)
        self._schedule(now)

    @property
    def bridges_gaps(self) -> bool:
        return True  # its tails that cannot are ended at the loss (router_lost)

    def router_lost(self, error: str, reason: str) -> None:
        """No more hits until a rejoin: what is held goes now, in order, so that tails ending here
        (JSON) have every hit received before the loss, and the others have them before the gap."""
        self._drain()
        for member in list(self.members):
            if not member.bridges_gaps:
                member.fail(error, reason)  # it leaves the view as it ends

    def gap(self, info: dict[str, Any]) -> None:
        """Router lost and back: whatever is still held goes first, then the notice, in a new epoch."""
        self._drain()
        notice = {**info, "last_event_id": self.feed.event_id(self.feed.last_seq)}
        self.feed.new_epoch()
        for listener in list(self.feed.listeners):
            listener.gap(notice)

    def fail(self, error: str, reason: str) -> None:
        """The subscription is gone for good: every tail of the view ends with ``error``."""
        self.stop()
        self.on_failed(self)
        for member in list(self.members):
            member.fail(error, reason)

    # -- shaping and releasing ---------------------------------------------

    def _shaped(self, hit: Hit) -> EncodedHit:
        project = self._project
        if project is None:
            return hit if isinstance(hit, EncodedHit) else EncodedHit(hit)
        return cut(hit, project)

    def _release(self, released: list[Released[EncodedHit]]) -> None:
        if not released:
            return
        hits: list[Hit] = []
        late = early = 0
        for hit, is_late, is_early in released:
            if is_late:
                late += 1
                hit = (
                    hit.with_members(_late=True)
                    if isinstance(hit, CutHit)
                    else EncodedHit({**hit, "_late": True})
                )
            early += is_early
            hits.append(hit)
        if late:
            self.stats.late(late)
        if early:
            self.stats.early(early)
        self.feed.fan_out(hits)

    def _drain(self) -> None:
        if self.buffer is not None and not self._stopped:
            self._release(self.buffer.drain())

    def _schedule(self, now: float) -> None:
        """One timer, at the next deadline: deadlines only move later, so one set earlier still holds."""
        if self.buffer is None or self._stopped:
            return
        call = self._release_call
        if call is not None and call.active():
            return
        due = self.buffer.next_due()
        if due is not None:
            self._release_call = self.clock.callLater(max(0.0, due - now), self._tick)

    def _tick(self) -> None:
        self._release_call = None
        if self.buffer is None or self._stopped:
            return
        now = self.clock.seconds()
        self._release(self.buffer.due(now + _TIMER_SLACK))
        self._schedule(now)

    def stop(self) -> None:
        """Let go of held hits and timers (no tail left, or the subscription failed)."""
        self._stopped = True
        for call in (self._release_call, self.linger_call):
            if call is not None and call.active():
                call.cancel()
        self._release_call = self.linger_call = None
        if self.buffer is not None:
            self.buffer.clear()


def _ignore(_view: SharedView) -> None:
    return None


Key = tuple[str, ViewShape]


class Views:
    """Every shared view of this tailor, keyed by (sid, shape); each a listener of the hub."""

    def __init__(
        self,
        hub: PartitionedHub,
        max_held_bytes: int,
        stats: ViewStats | None = None,
        compile_projection: Callable[[tuple[str, ...]], Projection] = compile_fields,
    ) -> None:
        self.hub = hub
        self.max_held_bytes = max_held_bytes
        self.stats = stats or ViewStats()
        self.compile_projection = compile_projection
        self._views: dict[Key, SharedView] = {}

    def __len__(self) -> int:
        return len(self._views)

    @property
    def held(self) -> int:
        return sum(view.held for view in self._views.values())

    @property
    def held_bytes(self) -> int:
        return sum(view.held_bytes for view in self._views.values())

    def enter(self, sid: str, shape: ViewShape, member: Listener) -> SharedView:
        """``member``'s view, made (and attached to the sid's subscription) on first use; wait on
        its ``when_joined``, then ``receive``. No router session: RouterUnavailable, as a direct join."""
        self.hub.require(sid)
        key = (sid, shape)
        view = self._views.get(key)
        if view is None:
            project = self.compile_projection(shape.fields) if shape.fields is not None else None
            view = SharedView(
                sid,
                shape,
                self.hub.clock,
                history_size=self.hub.history_size,
                max_held_bytes=self.max_held_bytes,
                project=project,
                stats=self.stats,
            )
            view.subscription = sub = self.hub.attach(sid, view)
            view.on_failed = lambda failed: self._forget(key, failed)
            self._views[key] = view
            sub.when_ready().addErrback(self._refused, key, view)
        elif view.linger_call is not None and view.linger_call.active():
            view.linger_call.cancel()
            view.linger_call = None
        view.members.add(member)
        return view

    def _refused(self, _failure: Failure, key: Key, view: SharedView) -> None:
        """The router refused the subscription (it let go of the view): its joining tails get the
        failure from ``when_joined``; nobody joins it any more."""
        self._forget(key, view)
        view.stop()

    def leave(self, sid: str, shape: ViewShape, member: Listener, linger: bool = False) -> None:
        """Remove ``member``; the last one out drops the view (after the SSE linger if asked)."""
        key = (sid, shape)
        view = self._views.get(key)
        if view is None or member not in view.members:
            return
        view.members.discard(member)
        view.feed.listeners.discard(member)
        if view.members:
            return
        if linger and self.hub.sse_linger > 0:
            # Its releases go on into its history, for the SSE client to resume from.
            view.linger_call = self.hub.clock.callLater(self.hub.sse_linger, self._drop, key, view)
            return
        self._drop(key, view)

    def _drop(self, key: Key, view: SharedView) -> None:
        view.linger_call = None
        if view.members:
            return
        self._forget(key, view)
        view.stop()
        self.hub.leave(view.sid, view)

    def _forget(self, key: Key, view: SharedView) -> None:
        if self._views.get(key) is view:
            del self._views[key]
