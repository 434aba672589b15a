"""The router on two nodes (common/router_tier.py): each sid's topic on its partition's node.

Promises: beaters publish a sid's hits at its partition's node and tailors
subscribe there; a WAMP client at the front URL (a browser) receives any
sid's hits, whichever partition; only the services may sign in at the other
nodes; and one node killed under load is only its partition's trouble: the
other partition's tails carry on with no gap and its documents are
acknowledged, the killed partition's NDJSON tails say where hits may be
missing and carry on once the node is back, and nothing acknowledged is lost.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator

import pytest

from devstack.wamp_client import JoinRefused, WampClient
from tests.faults.delivery import numbers
from tests.http_client import http, ingest
from tests.partitions import gaps, hit_numbers, one_query_per_partition
from tests.real_stack import RouterHandle, Stack, StartService, admin_client
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until


@pytest.fixture
def two_nodes(stack: Stack) -> Iterator[RouterHandle]:
    """A router of two partitions for this test alone: its front and one more node."""
    handle = stack.start_router(f"faults-tier-{uuid.uuid4().hex[:6]}", workers=2)
    yield handle
    handle.stop()


def subscribed_at(url: str, sid: str) -> bool:
    """Whether the router node at ``url`` holds a subscription to the sid's topic."""
    admin = admin_client(url)
    try:
        return admin.call("wamp.subscription.lookup", f"docs-for-{sid}") is not None
    finally:
        admin.close()


def test_each_sid_lives_on_its_partitions_node_and_the_front_serves_any(
    two_nodes: RouterHandle, beaters: StartService, tailors: StartService, index: str
) -> None:
    router = two_nodes
    front, other = router.urls
    beater = beaters(router_url=router.service_url)
    tailor = tailors(router_url=router.service_url)
    browser = WampClient(front)
    try:
        run = uuid.uuid4().hex[:8]
        (part0, sid0), (part1, sid1) = one_query_per_partition(
            lambda q: browser.call("com.estrom.register_query", index, q), run
        )
        tails = [Tail(tailor.url, {"s": sid, "format": "ndjson"}) for sid in (sid0, sid1)]
        # The tailor's subscriptions: each at its partition's node, and only there.
        assert subscribed_at(front, sid0)
        assert not subscribed_at(other, sid0)
        assert subscribed_at(other, sid1)
        # A browser knows one URL: its subscription to partition 1's sid is at the front.
        sink = browser.subscribe(f"docs-for-{sid1}")
        wait_until(lambda: subscribed_at(front, sid1), 10, "the browser's subscription at the front")

        answer = ingest(
            beater.url, index, [{"run": run, "part": part0, "n": 0}, {"run": run, "part": part1, "n": 1}]
        )
        assert answer.status == 200, answer.body
        # Deliveries per subscriber session: the sid of partition 1 twice (tailor, browser).
        assert answer.json()["published"] == 2

        tails[0].wait(lambda t: hit_numbers(t) == [0], 15, "partition 0's hit")
        tails[1].wait(lambda t: hit_numbers(t) == [1], 15, "partition 1's hit")
        assert numbers(sink.wait_for_count(1)) == [1]
    finally:
        browser.close()


def test_only_the_services_sign_in_at_a_partitions_node(two_nodes: RouterHandle) -> None:
    """Readers and browsers reach the front only: their rights and quotas are judged there."""
    other = two_nodes.urls[1]
    with pytest.raises(JoinRefused):
        WampClient(other)  # anonymous, as a browser
    assert http("GET", other.replace("ws://", "http://").removesuffix("/ws") + "/").status == 404
    admin = admin_client(other)  # a principal signs in as at the front
    admin.close()


def kill(node: RouterHandle) -> None:
    """SIGKILL to the node's whole process group: controller and router worker, no goodbye."""
    node.process.stop(sig=signal.SIGKILL)


def test_a_partitions_node_killed_is_that_partitions_gap_alone(
    two_nodes: RouterHandle, beaters: StartService, tailors: StartService, index: str
) -> None:
    router = two_nodes
    [node1] = router.partitions
    beater = beaters(router_url=router.service_url, ESTROM_PUBLISH_TIMEOUT="3")
    tailor = tailors(router_url=router.service_url, ESTROM_TAILOR_HEARTBEAT="1")
    browser = WampClient(router.url)
    run = uuid.uuid4().hex[:8]
    try:
        (part0, sid0), (part1, sid1) = one_query_per_partition(
            lambda q: browser.call("com.estrom.register_query", index, q), run
        )
    finally:
        browser.close()
    tail0, tail1 = (Tail(tailor.url, {"s": sid, "format": "ndjson"}) for sid in (sid0, sid1))

    def send(part: int, n: int) -> int:
        return ingest(beater.url, index, [{"run": run, "part": part, "n": n}], timeout=20).status

    assert send(part0, 0) == 200
    assert send(part1, 1) == 200
    tail0.wait(lambda t: hit_numbers(t) == [0], 15, "partition 0's first hit")
    tail1.wait(lambda t: hit_numbers(t) == [1], 15, "partition 1's first hit")

    kill(node1)
    wait_until(lambda: http("GET", beater.url + "/healthz").status == 503, 30, "the beater saw node 1 go")
    # Partition 0 never notices: acknowledged, delivered, no gap.
    assert send(part0, 2) == 200
    tail0.wait(lambda t: hit_numbers(t) == [0, 2], 15, "partition 0's hit while node 1 is down")
    # Partition 1's documents are refused, not acknowledged and lost: the sender retries them.
    assert send(part1, 3) == 503
    health = http("GET", beater.url + "/healthz").json()
    assert health["router_nodes"] == ["ok", "disconnected"], health

    node1.start()
    wait_until(lambda: http("GET", beater.url + "/healthz").status == 200, 30, "the beater rejoined node 1")
    tail1.wait(lambda t: len(gaps(t)) == 1, 30, "partition 1's gap notice")
    wait_until(lambda: send(part1, 4) == 200, 30, "partition 1 acknowledged again")
    tail1.wait(lambda t: 4 in hit_numbers(t), 15, "partition 1 after the gap")
    assert send(part0, 5) == 200
    tail0.wait(lambda t: hit_numbers(t) == [0, 2, 5], 15, "partition 0 carried on")

    assert gaps(tail0) == []
    [gap] = gaps(tail1)
    assert "router" in gap["reason"]
    assert hit_numbers(tail1) == [1, 4]
    for tail in (tail0, tail1):
        tail.close()
