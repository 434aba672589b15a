"""One sid's subscription in this process: its listeners, its epoch and history, its readiness.

The hub subscribes each sid once (tailor/subscriptions/hub.py); every hit it
receives is numbered, kept for resumes where SSE clients want it
(tailor/subscriptions/resume.py), and handed to each listener in turn. That
numbered fan-out (``Fanout``) is also what a shared view (tailor/views/view.py)
hands its own hits out with, so that its tails' SSE ids resume the same way.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from common.hits import Hit
from tailor.subscriptions.resume import Resume, SequencedHit, plan_resume

log = Logger()


def as_is(hit: Hit) -> Hit:
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


@runtime_checkable
class Relay(Listener, Protocol):
    """A listener with listeners of its own (a shared view).

    Told of a router loss as it happens, so that those of its listeners that
    cannot outlive one end at once, as the hub ends its own.
    """

    def router_lost(self, error: str, reason: str) -> None: ...


@dataclass(eq=False)
class Fanout:
    """Hits numbered in an epoch, the last ones kept for resumes, handed to each listener in turn."""

    sid: str
    history_size: int
    #: Turns a received hit into what listeners get (the app passes the
    #: wire format's encode-once hit); the fan-out itself knows no format.
    prepare: Callable[[Hit], Hit] = as_is
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    next_seq: int = 1
    listeners: set[Listener] = field(default_factory=set)
    history: deque[SequencedHit] = field(init=False)
    #: Only SSE clients resume: a fan-out that never had one keeps no history.
    keep_history: bool = False
    #: Told, per listener and event, the seconds from the event's arrival to its hand-over (metrics).
    on_delivered: Callable[[float], None] | None = None

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}:{seq}"

    def new_epoch(self) -> None:
        """After a gap: old event ids no longer resume without one."""
        self.epoch = secrets.token_hex(4)
        self.history.clear()

    def fan_out(self, hits: Sequence[Hit]) -> None:
        """Number, remember and hand out ``hits`` (each prepared once for all listeners)."""
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


@dataclass(eq=False)
class SharedSubscription(Fanout):
    """The state of one sid in this process: its fan-out, and its WAMP subscription."""

    wamp_subscription: Any = None
    linger_call: IDelayedCall | None = None
    dropped: bool = False
    #: (index, query) the sid stands for, once a client resolved it: later
    #: clients of the sid skip the register/describe round trip.
    described: tuple[str, Any] | None = None
    _ready: bool = False
    _error: Failure | None = None
    _waiters: list[Deferred[None]] = field(default_factory=list)

    def new_epoch(self) -> None:
        """Subscribed again after a gap: old event ids no longer resume without one."""
        super().new_epoch()
        self._ready, self._error = False, None

    def on_event(self, *hits: Hit, **_details: Any) -> None:
        """The WAMP event handler: number, remember and fan out the hits (each encoded once for all)."""
        self.fan_out(hits)

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
