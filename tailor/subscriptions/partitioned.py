"""The tailor's subscriptions over several router nodes: one hub per node, each sid at its partition's.

Each router node carries the topics of its partition (common/router_tier.py),
so a sid is subscribed on that node only, through that node's hub
(tailor/subscriptions/hub.py). A node lost is that hub's loss alone: its
streams get their gap notice, and the other partitions' streams never notice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from autobahn.wamp.interfaces import ISession
from twisted.internet.interfaces import IReactorTime

from common.contract import is_sid
from common.partitions import partition_of
from tailor.subscriptions.hub import SubscriptionHub
from tailor.subscriptions.shared import Listener, SharedSubscription


class PartitionedHub:
    """What the tailor's streams ask of "the hub", each sid sent to its node's hub."""

    def __init__(self, hubs: Sequence[SubscriptionHub]) -> None:
        if not hubs:
            raise ValueError("one hub per router node, at least one")
        self.hubs = tuple(hubs)
        first = self.hubs[0]
        self.clock: IReactorTime = first.clock
        self.history_size = first.history_size
        self.sse_linger = first.sse_linger

    def of(self, sid: str) -> SubscriptionHub:
        """The hub of ``sid``'s node (a sid: 16 hex digits, as the beater gives them)."""
        return self.hubs[partition_of(sid, len(self.hubs))] if len(self.hubs) > 1 else self.hubs[0]

    @property
    def on_delivered(self) -> Callable[[float], None] | None:
        return self.hubs[0].on_delivered

    @on_delivered.setter
    def on_delivered(self, observe: Callable[[float], None] | None) -> None:
        for hub in self.hubs:
            hub.on_delivered = observe

    def __len__(self) -> int:
        return sum(len(hub) for hub in self.hubs)

    def require(self, sid: str) -> ISession:
        """The session of ``sid``'s node (RouterUnavailable without one)."""
        return self.of(sid).require(sid)

    def get(self, sid: str) -> SharedSubscription | None:
        """The sid's subscription; None for one not held, and for a client's ``s=`` that is no sid."""
        return self.of(sid).get(sid) if is_sid(sid) else None

    async def join(self, sid: str, listener: Listener, history: bool = False) -> SharedSubscription:
        return await self.of(sid).join(sid, listener, history)

    def attach(self, sid: str, listener: Listener, history: bool = False) -> SharedSubscription:
        return self.of(sid).attach(sid, listener, history)

    def leave(self, sid: str, listener: Listener, linger: bool = False) -> None:
        self.of(sid).leave(sid, listener, linger)
