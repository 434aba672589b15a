"""Publishing matches: one acknowledged WAMP event per subscription per batch.

The router's cost is per event (a few thousand events/s per core on
CPython), so all hits of one batch for one sid travel in one event, as
positional args in ingest order. Every publish asks for an acknowledgement:
the ingest answer 200 promises that the router took every match.

With several router nodes (common/router_tier.py) each sid's event goes to
its partition's node, and also to any other node where a client that knows
nothing of partitions (a browser, at the front) subscribed to it: each
node's subscriptions are known from its meta events
(beater/queries/lifecycle.py).
A batch needing a node that is down is refused whole before anything is
sent (503): the sender's retry then duplicates nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from autobahn.wamp.types import PublishOptions
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from common.contract import topic_for
from common.errors import RetryLater
from common.hits import Hit
from common.metrics import Metrics
from common.router_tier import RouterTier
from common.wamp import RouterUnavailable


class PublishFailed(RetryLater):
    """The router did not acknowledge a publish in time (HTTP 503)."""


def group_by_sid(hits: Sequence[Hit], matches: Sequence[Sequence[str]]) -> dict[str, list[Hit]]:
    """``{sid: [hits in ingest order]}`` from per-document match lists."""
    grouped: dict[str, list[Hit]] = {}
    for hit, sids in zip(hits, matches, strict=True):
        for sid in sids:
            grouped.setdefault(sid, []).append(hit)
    return grouped


def nobody_elsewhere(_node: int, _sid: str) -> bool:
    return False


class Publisher:
    """Publishes grouped hits through the router nodes' current sessions."""

    def __init__(
        self,
        wamp: RouterTier,
        reactor: IReactorTime,
        timeout: float,
        metrics: Metrics | None = None,
        subscribed_at: Callable[[int, str], bool] = nobody_elsewhere,
    ) -> None:
        self.wamp = wamp
        self.reactor = reactor
        self.timeout = timeout
        self.metrics = metrics
        #: whether a router node has a subscription to the sid's topic (asked of the other nodes)
        self.subscribed_at = subscribed_at
        self._options = PublishOptions(acknowledge=True)

    def nodes_for(self, sid: str) -> list[int]:
        """The nodes that get ``sid``'s events: its partition's, and every other joined node where
        someone subscribed to it (a node that is down has no subscribers left)."""
        home = self.wamp.partition(sid)
        nodes = [home]
        if len(self.wamp) > 1:
            nodes += [
                node
                for node, holder in enumerate(self.wamp.holders)
                if node != home and holder.session is not None and self.subscribed_at(node, sid)
            ]
        return nodes

    def publish(self, grouped: dict[str, list[Hit]]) -> Deferred[int]:
        """Send every group now; the Deferred fires with the number of hit deliveries once all are acked.

        Every event is handed to the session before this returns, so a caller
        that publishes batches one after another keeps their order.
        """
        if not grouped:
            return succeed(0)
        routes = [(sid, hits, self.nodes_for(sid)) for sid, hits in grouped.items()]
        # Every node this batch needs, before anything is sent: a node down refuses the batch whole.
        sessions = {node: self.wamp.holders[node].require() for _, _, nodes in routes for node in nodes}
        pending: list[Deferred[Any]] = []
        try:
            for sid, hits, nodes in routes:
                for node in nodes:
                    d = sessions[node].publish(topic_for(sid), *hits, options=self._options)
                    d.addTimeout(self.timeout, self.reactor)
                    pending.append(d)
        except Exception:
            # The session broke part-way: the batch fails as a whole (503), and
            # the events already handed over must not fail unobserved later.
            for d in pending:
                d.addErrback(lambda _: None)
            raise
        acked: Deferred[Any] = gatherResults(pending, consumeErrors=True)
        sent = time.perf_counter()
        return acked.addCallbacks(lambda _: self._acked(grouped, sent), self._failed)

    def _acked(self, grouped: dict[str, list[Hit]], sent: float) -> int:
        if self.metrics is not None:
            self.metrics.observe("publish_ack_seconds", time.perf_counter() - sent)
            for sid, hits in grouped.items():
                self.metrics.inc("query_matches_total", len(hits), sid=sid)
        return sum(len(h) for h in grouped.values())

    def _failed(self, failure: Failure) -> NoReturn:
        first = getattr(failure.value, "subFailure", None)
        reason = first.getErrorMessage() if first is not None else failure.getErrorMessage()
        if not all(self.wamp.states()):
            raise RouterUnavailable(f"router connection lost while publishing: {reason}") from failure.value
        raise PublishFailed(f"router did not acknowledge a publish: {reason}") from failure.value
