"""The services' side of the router tier: which node a sid's events and subscription go to."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from beater.app import build_metrics
from beater.publishing.publisher import Publisher
from beater.queries.lifecycle import QueryLifecycle
from common.partitions import partition_of
from common.router_tier import RouterTier
from common.wamp import RouterUnavailable
from tailor.subscriptions.hub import SubscriptionHub
from tailor.subscriptions.partitioned import PartitionedHub


class Session:
    """Records publishes; every one acknowledged at once."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def is_attached(self) -> bool:
        return True

    def publish(self, topic: str, *args: Any, options: Any = None) -> Deferred[Any]:
        self.published.append(topic)
        d: Deferred[Any] = Deferred()
        d.callback(None)
        return d


class Holder:
    def __init__(self, session: Session | None) -> None:
        self.session = session

    def require(self) -> Session:
        if self.session is None:
            raise RouterUnavailable("not connected to the router")
        return self.session

    def when_joined(self, _callback: Any) -> None:
        return None


def sid_in(partition: int, k: int = 2) -> str:
    return next(sid for sid in (f"{n:016x}" for n in range(100)) if partition_of(sid, k) == partition)


def tier(*sessions: Session | None) -> RouterTier:
    return RouterTier([Holder(s) for s in sessions])  # type: ignore[misc]


def test_each_sid_is_published_at_its_partitions_node_only() -> None:
    front, other = Session(), Session()
    s0, s1 = sid_in(0), sid_in(1)
    acked = Publisher(tier(front, other), Clock(), 5.0).publish({s0: [{}], s1: [{}, {}]})
    assert acked.result == 3
    assert front.published == [f"docs-for-{s0}"]
    assert other.published == [f"docs-for-{s1}"]


def test_a_sid_subscribed_at_the_front_is_published_there_too() -> None:
    """A browser at the front knows nothing of partitions: its sid's events are brought to it."""
    front, other = Session(), Session()
    s1 = sid_in(1)
    publisher = Publisher(
        tier(front, other), Clock(), 5.0, subscribed_at=lambda node, sid: (node, sid) == (0, s1)
    )
    assert publisher.publish({s1: [{}]}).result == 1  # deliveries counted per document and sid
    assert front.published == other.published == [f"docs-for-{s1}"]


def test_a_batch_needing_a_node_that_is_down_is_refused_whole_before_anything_is_sent() -> None:
    front = Session()
    with pytest.raises(RouterUnavailable):
        Publisher(tier(front, None), Clock(), 5.0).publish({sid_in(0): [{}], sid_in(1): [{}]})
    assert front.published == []  # the sender's retry duplicates nothing
    # A batch of partition 0 alone goes through.
    assert Publisher(tier(front, None), Clock(), 5.0).publish({sid_in(0): [{}]}).result == 1


def test_calls_use_any_joined_node_the_front_first() -> None:
    front, other = Session(), Session()
    assert tier(front, other).require() is front
    assert tier(None, other).require() is other
    with pytest.raises(RouterUnavailable):
        tier(None, None).require()
    assert tier(None, other).states() == [False, True]


def test_the_tailor_subscribes_each_sid_through_its_partitions_hub() -> None:
    clock = Clock()
    hubs = [SubscriptionHub(Holder(Session()), clock, 0, 0.0) for _ in range(2)]  # type: ignore[arg-type]
    partitioned = PartitionedHub(hubs)
    s0, s1 = sid_in(0), sid_in(1)
    assert partitioned.of(s0) is hubs[0]
    assert partitioned.of(s1) is hubs[1]
    partitioned.on_delivered = print
    assert all(hub.on_delivered is print for hub in hubs)


def test_a_node_that_is_down_gets_no_copy_its_subscribers_are_gone() -> None:
    other = Session()
    s1 = sid_in(1)
    publisher = Publisher(tier(None, other), Clock(), 5.0, subscribed_at=lambda _node, _sid: True)
    assert publisher.publish({s1: [{}]}).result == 1
    assert other.published == [f"docs-for-{s1}"]


def test_a_client_sid_that_is_no_sid_is_simply_not_held() -> None:
    """``s=`` comes from the client as typed: no hub is asked for what cannot be a sid."""
    hubs = [SubscriptionHub(Holder(Session()), Clock(), 0, 0.0) for _ in range(2)]  # type: ignore[arg-type]
    for k in (1, 2):
        partitioned = PartitionedHub(hubs[:k])
        for text in ("\x00", "not-a-sid", "", "G" * 16):
            assert partitioned.get(text) is None


class Store:
    """Records which of a sweep's steps ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def __getattr__(self, name: str) -> Any:
        async def step(*_args: Any, **_kwargs: Any) -> int:
            self.ran.append(name)
            return 0

        return step


def test_a_sweep_with_a_node_down_judges_no_subscription_but_keeps_the_engine_side_up() -> None:
    """Who listens on the lost node is unknown: nothing is (de)activated or collected, while the
    other partitions' new document fields still get mapped."""
    store = Store()
    lifecycle = QueryLifecycle(
        store,  # type: ignore[arg-type]
        tier(Session(), None),
        Clock(),
        build_metrics(),
        grace=60,
        interval=1,
    )
    failures: list[Any] = []
    Deferred.fromCoroutine(lifecycle.sweep()).addErrback(failures.append)
    assert [f.type for f in failures] == [RouterUnavailable]  # logged as a skipped sweep
    assert store.ran == ["sync_mappings", "repair_full_indices", "migrate_layout", "refresh_targets"]
