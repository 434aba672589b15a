"""One node of a three-node cluster killed (kill -9) under a steady sender and live tails, then back.

Promises, on every engine family: every acknowledged document reaches every
subscriber (a WAMP subscription and an NDJSON tail) at least once,
duplicates counted and printed; ingest answers 503 or 429 only from the kill
until the cluster takes requests again; the tails stay open; no request waits
longer than the engine timeout allows; a stored query survives the loss of
the node that held its primary shard; ``n=`` reads the latest documents of
all shards.
"""

from __future__ import annotations

import time
import uuid

import pytest

from devstack.wamp_client import WampClient
from tests.cluster.conftest import CLUSTER_SETTINGS, NODES, Cluster, get_json
from tests.faults.delivery import numbers, report, run_sender
from tests.http_client import engine_request, ingest
from tests.real_stack import RouterHandle, StartService
from tests.tailor.tail_client import Tail
from tests.tailor.test_tail_backfill import bulk
from tests.waiting import wait_until

ENGINE_TIMEOUT = float(CLUSTER_SETTINGS["ESTROM_ENGINE_TIMEOUT"])
#: A node's restart and the cluster's return to green take minutes on a shared 2-core machine.
pytestmark = pytest.mark.timeout(1200)


def primary_node(cluster: Cluster, pindex: str, routing: str) -> str:
    """The name of the node that holds the primary of the shard a document id routes to."""
    url = f"{cluster.live()[0].url}/{pindex}/_search_shards?routing={routing}"
    answer = get_json(url)
    assert isinstance(answer, dict)
    names = {node_id: node["name"] for node_id, node in answer["nodes"].items()}
    primary = next(copy for group in answer["shards"] for copy in group if copy["primary"])
    return names[primary["node"]]


@pytest.mark.parametrize("victim", ["master", "data"])
def test_kill_one_node_under_load(
    cluster: Cluster,
    cluster_router: RouterHandle,
    beaters: StartService,
    tailors: StartService,
    index: str,
    victim: str,
) -> None:
    beater = beaters(**CLUSTER_SETTINGS)
    tailor = tailors(**CLUSTER_SETTINGS, ESTROM_TAILOR_HEARTBEAT="1")
    run = uuid.uuid4().hex[:8]
    client = WampClient(cluster_router.url)
    sid = client.call("com.estrom.register_query", index, f"run:{run}")
    sink = client.subscribe(f"docs-for-{sid}")
    tail = Tail(tailor.url, {"s": sid, "format": "ndjson"})
    assert tail.status == 200
    # Every copy started before the load: the kill is the only fault.
    cluster.health(index=f"estrom-queries-{index}", wait_for_status="green", timeout="60s")
    shards = engine_request(cluster.nodes[0].url, "GET", f"/_cat/shards/estrom-queries-{index}?format=json")
    assert len({s["shard"] for s in shards}) == 3
    assert sum(1 for s in shards if s["prirep"] == "r") == 3

    master = cluster.master()
    node = master if victim == "master" else next(n for n in cluster.nodes if n is not master)
    sender = run_sender(beater.url, index, run, timeout=30.0).start()
    try:
        sender.wait(lambda s: len(s.acked) >= 5, what="5 batches acknowledged")
        killed = time.monotonic()
        node.kill()
        print(f"killed {node.node_name} ({victim}; master was {master.node_name})")
        cluster.wait_nodes(NODES - 1, 120)
        writable = time.monotonic()
        acked = len(sender.stats.acked)
        sender.wait(lambda s: len(s.acked) >= acked + 5, 60, "ingest goes on with two nodes")
        print(f"two-node cluster answering {writable - killed:.2f}s after the kill")
        cluster.restart(node)
        back = len(sender.stats.acked)
        sender.wait(lambda s: len(s.acked) >= back + 5, 60, "ingest goes on with three nodes again")
    finally:
        sender.stop()

    attempts = sender.stats.attempts  # one request at a time, in order
    refused = [a for a in attempts if a.outcome != "200"]
    outcomes = {a.outcome for a in attempts}
    print(f"outcomes {sorted(outcomes)}; refused {len(refused)} of {len(attempts)}")
    # Every request was answered by the beater, none left to the sender's own 30 s timeout
    # (no "timeout" outcome): no request waited on the engine past the beater's timeouts.
    assert outcomes <= {"200", "503", "429"}, outcomes
    slowest = max(a.ended - a.started for a in attempts)
    print(f"slowest request {slowest:.2f}s (engine timeout {ENGINE_TIMEOUT:g}s)")
    # Refused only because of the kill: ended after it (a request begun well before may
    # be refused by it on a slow machine), and came before the first request begun once
    # the cluster answered with two nodes was acknowledged; none after it, the node's
    # return included.
    recovered = next(i for i, a in enumerate(attempts) if a.outcome == "200" and a.started >= writable)
    for i, attempt in enumerate(attempts):
        if attempt.outcome != "200":
            assert attempt.ended >= killed, attempt
            assert i < recovered, (attempt, attempts[recovered])

    sent = sender.stats.sent_ids
    acked_ids = sender.stats.acked_ids
    assert acked_ids <= sent
    hits = sink.wait_for(lambda hits: acked_ids <= set(numbers(hits)), timeout=30)
    tail.wait(lambda t: acked_ids <= set(numbers(t.hits)), 30, "every document in the HTTP tail")
    assert not tail.ended, "the tail stayed open"
    tail.close()
    client.close()
    report("WAMP subscriber", acked_ids, numbers(hits))
    report("NDJSON tail", acked_ids, numbers(tail.hits))


def test_stored_query_survives_the_loss_of_its_primary(
    cluster: Cluster, cluster_router: RouterHandle, beaters: StartService, index: str
) -> None:
    beater = beaters(**CLUSTER_SETTINGS)
    client = WampClient(cluster_router.url)
    run = uuid.uuid4().hex[:8]
    sid = client.call("com.estrom.register_query", index, f"run:{run}")
    sink = client.subscribe(f"docs-for-{sid}")
    # Its replica must be allocated first, or losing the primary loses the shard.
    cluster.health(index=f"estrom-queries-{index}", wait_for_status="green", timeout="60s")
    holder = cluster.by_name(primary_node(cluster, f"estrom-queries-{index}", sid))
    holder.kill()
    print(f"killed {holder.node_name}, holder of the primary of {sid}")
    try:
        # The holder may be the elected master: an election first.
        cluster.wait_nodes(NODES - 1, 240)
        assert primary_node(cluster, f"estrom-queries-{index}", sid) != holder.node_name
        resp = wait_until(
            lambda: (r := ingest(beater.url, index, [{"run": run, "n": 1}])).status == 200 and r,
            60,
            "ingest with the primary's node gone",
        )
        assert resp.json()["published"] == 1
        hits = sink.wait_for(lambda hits: len(hits) >= 1, timeout=30)
        assert numbers(hits) == [1]
        assert client.call("com.estrom.describe_query", sid)["sid"] == sid
    finally:
        cluster.restart(holder)
        client.close()


def test_backfill_reads_every_shard(
    cluster: Cluster, cluster_router: RouterHandle, beaters: StartService, tailors: StartService, index: str
) -> None:
    beaters(**CLUSTER_SETTINGS)  # registers the tail's query
    tailor = tailors(**CLUSTER_SETTINGS)
    url = cluster.nodes[0].url
    engine_request(url, "PUT", f"/{index}", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}})
    bulk(
        url,
        index,
        [
            {"_id": f"d{n}", "kind": "bf", "n": n, "@timestamp": f"2026-12-01T10:00:{n:02d}Z"}
            for n in range(30)
        ],
    )
    counts = engine_request(url, "GET", f"/_cat/shards/{index}?format=json")
    assert sum(1 for s in counts if s["prirep"] == "p" and int(s["docs"] or 0) > 0) == 3
    tail = Tail(tailor.url, {"i": index, "q": "kind:bf", "n": 10, "limit": 10})
    assert tail.status == 200, tail.body
    raw = tail.wait_end(60)
    assert sorted(numbers(tail.hits)) == list(range(20, 30)), raw[-500:]
