"""The router tier as a service sees it: one WAMP session per router node, one node per partition.

A crossbar realm lives in one router process, on one core. estrom spreads
its topics over K router nodes instead (docs/scaling.md): the sid's
partition (common/partitions.py) names the node that carries
``docs-for-<sid>``, so beaters publish there and tailors subscribe there,
and no node forwards anything to another. Node 0 is also the *front*: the
URL of the contract, where browsers and every other WAMP client that knows
nothing of partitions connect (the beater brings them the events of other
partitions' sids they subscribe to: beater/publishing/publisher.py).

``ESTROM_ROUTER_URL`` lists the nodes' URLs in partition order,
comma-separated; one URL is one partition, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from autobahn.wamp.interfaces import ISession
from twisted.internet.defer import Deferred, gatherResults

from common.partitions import partition_of
from common.wamp import RouterUnavailable, SessionHolder

#: What a service does on each node's (re)join, before the node counts as joined: (node, session).
OnNodeJoin = Callable[[int, ISession], Awaitable[None]]


class RouterTier:
    """K session holders, the first the front; a sid's topic lives on ``holders[partition(sid)]``."""

    def __init__(self, holders: Sequence[SessionHolder]) -> None:
        if not holders:
            raise ValueError("a router tier has at least one node")
        self.holders = tuple(holders)

    @classmethod
    def connect(
        cls,
        urls: Sequence[str],
        realm: str,
        on_join: OnNodeJoin | None = None,
        *,
        authid: str = "",
        secret: str = "",
    ) -> RouterTier:
        """A holder per URL, reconnecting on its own; ``on_join(node, session)`` on each (re)join."""

        def joining(node: int) -> Callable[[ISession], Awaitable[None]] | None:
            if on_join is None:
                return None
            return lambda session: on_join(node, session)

        return cls(
            [
                SessionHolder(url, realm, joining(node), authid=authid, secret=secret)
                for node, url in enumerate(urls)
            ]
        )

    def __len__(self) -> int:
        return len(self.holders)

    def partition(self, sid: str) -> int:
        """The node that carries ``docs-for-<sid>``."""
        return partition_of(sid, len(self.holders))

    @property
    def session(self) -> ISession | None:
        """A joined session for calls, the front's first; None when no node is joined."""
        for holder in self.holders:
            session = holder.session
            if session is not None and session.is_attached():
                return session
        return None

    def require(self) -> ISession:
        """``session``, or RouterUnavailable (a RetryLater) when no node is joined."""
        session = self.session
        if session is None:
            raise RouterUnavailable("not connected to any router node")
        return session

    def states(self) -> list[bool]:
        """Whether each node's session is there, in partition order."""
        return [holder.session is not None for holder in self.holders]

    def next_join(self) -> Deferred[Any]:
        """Fires once every node has (re)joined."""
        return gatherResults([holder.next_join() for holder in self.holders])

    def start(self, reactor: Any) -> None:
        for holder in self.holders:
            holder.start(reactor)

    async def stop(self) -> None:
        await gatherResults([Deferred.fromCoroutine(holder.stop()) for holder in self.holders])
