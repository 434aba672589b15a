"""Queries nobody listens to stop being percolated and are removed after the grace period."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from devstack.metrics_page import metric
from devstack.wamp_client import WampClient, on_reactor
from tests.http_client import engine_request, http, ingest
from tests.real_stack import EngineHandle, RouterHandle, ServiceHandle, StartService, admin_client
from tests.tcp_proxy import TCPProxy
from tests.waiting import wait_until

# Short, for a test: under such a beater, a query nobody subscribes to is gone within seconds.
# So a query meant to stay is subscribed before that beater starts, or before it is registered
# (an admin session may subscribe to any topic): never in between, where a slow machine could
# take longer than the grace.
FAST = {"ESTROM_QUERY_GRACE": "2", "ESTROM_QUERY_SWEEP_INTERVAL": "0.5"}
#: Frequent sweeps that never remove a query: deactivation and activation only.
SWEEPING = {"ESTROM_QUERY_GRACE": "600", "ESTROM_QUERY_SWEEP_INTERVAL": "0.5"}


def exists(wamp: WampClient, sid: str) -> bool:
    """describe_query answers (True) or says no_such_query (False); anything else fails."""
    try:
        wamp.call("com.estrom.describe_query", sid)
    except ApplicationError as err:
        if err.error != "com.estrom.error.no_such_query":
            raise
        return False
    return True


def stored(engine: EngineHandle, index: str, sid: str) -> dict[str, Any] | None:
    """The stored query as a search sees it (what percolation sees), or None."""
    resp = http(
        "POST",
        f"{engine.url}/estrom-queries-{index}/_search",
        json.dumps({"query": {"ids": {"values": [sid]}}}),
        {"content-type": "application/json"},
    )
    hits = resp.json()["hits"]["hits"] if resp.status == 200 else []
    return hits[0]["_source"] if hits else None


def percolator_properties(engine: EngineHandle, index: str) -> dict[str, Any]:
    """The field mappings the queries on ``index`` are parsed against.

    ``estrom-queries-<index>`` is the target's filtered alias on the shared
    percolator index holding its queries (``beater/store/mappings.py``).
    """
    body = engine_request(engine.url, "GET", f"/estrom-queries-{index}/_mapping")
    merged: dict[str, Any] = {}
    for mapping in body.values():
        merged.update(mapping["mappings"]["properties"])
    return merged


def lookups(service: ServiceHandle, outcome: str) -> float:
    return metric(service.url, "estrom_beater_lifecycle_lookups_total", outcome=outcome)


def sweeps(service: ServiceHandle) -> float:
    return metric(service.url, "estrom_beater_lifecycle_sweeps_total")


def wait_for_sweeps(service: ServiceHandle, n: int) -> None:
    """Until ``n`` more sweeps completed (so the last one started after this call)."""
    before = sweeps(service)
    wait_until(lambda: sweeps(service) >= before + n, what=f"{n} more sweeps")


@pytest.fixture
def router_link(router: RouterHandle) -> Iterator[TCPProxy]:
    """A proxy in front of the session router: slow or reset one beater's link only."""
    proxy = TCPProxy("127.0.0.1", router.port)
    yield proxy
    proxy.cut()


def ws_url(proxy: TCPProxy) -> str:
    return f"ws://127.0.0.1:{proxy.port}/ws"


def published_once(url: str, index: str, docs: Any) -> None:
    """Ingest ``docs`` until one hit is published to a subscription just made.

    A sweep may deactivate a query between its registration and the
    subscribe (on a slow machine, registering takes longer than a sweep
    interval); the subscribe reactivates it, asynchronously. An ingest that
    published nothing delivered nothing, so ingesting again is exact.
    """
    wait_until(
        lambda: ingest(url, index, docs).json()["published"] == 1, what="published to the new subscriber"
    )


def beater_log(service: ServiceHandle) -> str:
    return service.process.log_path.read_text()


def test_unsubscribed_query_is_collected_and_comes_back_with_the_same_sid(
    start_beater: StartService, router: RouterHandle, index: str, engine: EngineHandle, beater: ServiceHandle
) -> None:
    # The session's beater serves the registration (this test's own, with fast sweeps, starts after).
    listener = WampClient(router.url)
    sid = listener.call("com.estrom.register_query", index, "kind:gc")
    sink = listener.subscribe(f"docs-for-{sid}")
    beater = start_beater(**FAST)
    published_once(beater.url, index, {"kind": "gc", "marker": "one"})
    sink.wait_for_marker("one")
    listener.close()  # the last subscriber leaves

    observer = admin_client(router.url)
    wait_until(lambda: stored(engine, index, sid) is None, what="query removed")
    # describe searches, and a search sees the delete once the index refreshed.
    wait_until(lambda: not exists(observer, sid), what="describe says no_such_query")
    assert ingest(beater.url, index, {"kind": "gc", "marker": "nobody"}).json()["published"] == 0
    assert (
        metric(beater.url, "estrom_beater_queries_collected_total")
        + metric(beater.url, "estrom_beater_queries_deactivated_total")
        >= 1
    )

    # Subscribed first: from its registration on, the query has its subscriber.
    sink = observer.subscribe(f"docs-for-{sid}")
    again = observer.call("com.estrom.register_query", index, "kind:gc")
    assert again == sid
    published_once(beater.url, index, {"kind": "gc", "marker": "two"})
    assert [h["_source"]["marker"] for h in sink.wait_for_marker("two")] == ["two"]
    observer.close()


def test_subscribed_query_is_never_removed(
    start_beater: StartService, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    sid = wamp.call("com.estrom.register_query", index, "kind:kept")
    sink = wamp.subscribe(f"docs-for-{sid}")
    beater = start_beater(**FAST)
    before = metric(beater.url, "estrom_beater_lifecycle_sweeps_total")
    wait_until(
        lambda: metric(beater.url, "estrom_beater_lifecycle_sweeps_total") >= before + 10,
        what="ten sweeps",
    )
    assert stored(engine, index, sid)["estrom_active"] is True
    assert exists(wamp, sid)
    assert ingest(beater.url, index, {"kind": "kept", "marker": "still"}).json()["published"] == 1
    sink.wait_for_marker("still")


def test_only_queries_with_subscribers_are_percolated(
    start_beater: StartService, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    heard = wamp.call("com.estrom.register_query", index, "kind:both")
    unheard = wamp.call("com.estrom.register_query", index, "kind:both AND kind:both")
    assert heard != unheard
    wamp.subscribe(f"docs-for-{heard}")
    # Sweeping from now on: ``heard`` has had its subscriber since before.
    beater = start_beater(**SWEEPING)
    wait_until(lambda: stored(engine, index, unheard)["estrom_active"] is False, what="unheard deactivated")
    assert stored(engine, index, heard)["estrom_active"] is True
    assert ingest(beater.url, index, {"kind": "both"}).json()["published"] == 1

    # A subscriber arrives: the router announces it and the query is percolated again.
    sink = wamp.subscribe(f"docs-for-{unheard}")
    wait_until(lambda: stored(engine, index, unheard)["estrom_active"] is True, what="unheard reactivated")
    assert ingest(beater.url, index, {"kind": "both", "marker": "m"}).json()["published"] == 2
    sink.wait_for_marker("m")
    # Not removed while inactive within the grace period: describe still answers.
    assert exists(wamp, unheard)


def test_two_beaters_collect_consistently_and_reregistration_wins(
    start_beater: StartService, wamp: WampClient, admin_wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    kept = []
    for i in range(5):
        kept.append(wamp.call("com.estrom.register_query", index, f"n:{i}"))
        wamp.subscribe(f"docs-for-{kept[-1]}")
    first = start_beater(**FAST)
    second = start_beater(**FAST)
    dropped = [wamp.call("com.estrom.register_query", index, f"m:{i}") for i in range(5)]
    wait_until(
        lambda: all(stored(engine, index, s) is None for s in dropped), what="abandoned queries removed"
    )
    assert all(stored(engine, index, s)["estrom_active"] for s in kept)
    assert metric(first.url, "estrom_beater_lifecycle_sweeps_total") >= 1
    assert metric(second.url, "estrom_beater_lifecycle_sweeps_total") >= 1

    # Re-register an abandoned query again and again while both beaters sweep:
    # every registration that was acknowledged leaves it registered. A subscriber held from
    # before the registration until describe answered keeps the sweeps from removing it
    # meanwhile, however slow the machine; once it leaves, they do.
    topic = f"docs-for-{dropped[0]}"
    for _ in range(10):
        held = on_reactor(lambda: admin_wamp.session.subscribe(lambda *_a: None, topic))
        sid = wamp.call("com.estrom.register_query", index, "m:0")
        assert sid == dropped[0]
        assert exists(wamp, sid)
        on_reactor(held.unsubscribe)
        wait_until(lambda sid=sid: stored(engine, index, sid) is None, what="removed again")
    sink = admin_wamp.subscribe(topic)
    sid = wamp.call("com.estrom.register_query", index, "m:0")
    published_once(first.url, index, {"m": 0, "marker": "end"})
    sink.wait_for_marker("end")
    assert engine_request(engine.url, "GET", f"/estrom-queries-{index}/_count")["count"] == len(kept) + 1


def test_fields_added_to_the_document_index_reach_the_percolator_without_restart(
    start_beater: StartService, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    beater = start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="0.5")
    engine_request(engine.url, "PUT", f"/{index}", {"mappings": {"properties": {"msg": {"type": "text"}}}})
    wamp.call("com.estrom.register_query", index, "msg:hello")
    # Later, the document index learns a numeric field (e.g. from Logstash's documents).
    engine_request(engine.url, "PUT", f"/{index}/_mapping", {"properties": {"latency": {"type": "long"}}})

    def percolator_type() -> str | None:
        return percolator_properties(engine, index).get("latency", {}).get("type")

    assert wait_until(percolator_type, what="latency mapped in the percolator index") == "long"
    sid = wamp.call("com.estrom.register_query", index, "latency:[100 TO 200]")
    sink = wamp.subscribe(f"docs-for-{sid}")
    docs = [{"latency": 1000, "marker": "lexically-between"}, {"latency": 150, "marker": "end"}]
    published_once(beater.url, index, docs)
    assert [h["_source"]["marker"] for h in sink.wait_for_marker("end")] == ["end"]


def test_prefix_subscription_keeps_only_what_it_covers(
    start_beater: StartService, wamp: WampClient, admin_wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    queries = [f"p:{i}" for i in range(12)]
    sids = [wamp.call("com.estrom.register_query", index, q) for q in queries]
    # A prefix subscription for the first sid's first two hex digits covers
    # only the sids that start so; every other query is abandoned. Browsers
    # may subscribe exact only (tests/security/test_auth_matrix.py): the
    # prefix subscriber is a trusted session.
    covered_prefix = sids[0][:2]
    admin_wamp.subscribe(f"docs-for-{covered_prefix}", match="prefix")
    start_beater(**FAST)  # collecting from now on, under the subscription
    covered = [s for s in sids if s.startswith(covered_prefix)]
    others = [s for s in sids if not s.startswith(covered_prefix)]
    assert others, "the generator should give sids with other prefixes"
    wait_until(lambda: all(stored(engine, index, s) is None for s in others), what="uncovered removed")
    assert all(stored(engine, index, s)["estrom_active"] for s in covered)


def test_sweeps_survive_subscriber_churn(
    start_beater: StartService,
    router: RouterHandle,
    router_link: TCPProxy,
    wamp: WampClient,
    index: str,
    engine: EngineHandle,
) -> None:
    """Subscriptions vanishing under a sweep's feet are 'no subscriber', never a failed sweep."""
    kept = [wamp.call("com.estrom.register_query", index, f"kept:{i}") for i in range(3)]
    for sid in kept:
        wamp.subscribe(f"docs-for-{sid}")
    abandoned = [wamp.call("com.estrom.register_query", index, f"gone:{i}") for i in range(3)]
    # 500 subscriptions the beater has never heard of (they predate it), on a
    # slowed link: its first sweep looks them up, 32 at a time, for seconds.
    churner = admin_client(router.url)
    for sid in abandoned:
        churner.subscribe(f"docs-for-{sid}")
    # Many: the lookups must still be going when the churner leaves, on a slow machine too.
    for i in range(497):
        churner.subscribe(f"estrom.test.churn.{i}")
    router_link.delay(0.2)
    beater = start_beater(
        router_url=ws_url(router_link), ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="0.5"
    )
    wait_until(lambda: lookups(beater, "found") >= 1, what="first lookups answered")
    churner.close()  # every subscription still to be looked up is gone now
    wait_until(lambda: lookups(beater, "gone") >= 1, what="a lookup of a vanished subscription")
    router_link.delay(0)
    wait_for_sweeps(beater, 2)

    # Churn at full speed while the beater sweeps every half second.
    churner = admin_client(router.url)
    target = sweeps(beater) + 6
    rounds = 0
    while sweeps(beater) < target or rounds < 3:
        subs = [
            on_reactor(lambda t=t: churner.session.subscribe(lambda *_a: None, t))
            for t in [f"estrom.test.churn.{uuid.uuid4().hex}" for _ in range(20)]
        ]
        for sub in subs:
            on_reactor(sub.unsubscribe)
        rounds += 1
    churner.close()

    wait_until(
        lambda: all(stored(engine, index, s)["estrom_active"] is False for s in abandoned),
        what="abandoned queries deactivated",
    )
    assert all(stored(engine, index, s)["estrom_active"] for s in kept)
    assert lookups(beater, "failed") == 0
    log_text = beater_log(beater)
    assert "Unhandled error" not in log_text
    assert "lifecycle.sweep_failed" not in log_text


def test_steady_sweeps_look_nothing_up_and_a_rejoin_learns_again(
    start_beater: StartService, router_link: TCPProxy, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    """Known ids cost no wamp.subscription.get; a new router session starts a new map."""
    before = [wamp.call("com.estrom.register_query", index, f"early:{i}") for i in range(3)]
    for sid in before:
        wamp.subscribe(f"docs-for-{sid}")
    # Frequent sweeps, no collection: a slow subscribe after the registration below is only
    # a deactivation, undone by the subscription.
    beater = start_beater(router_url=ws_url(router_link), **SWEEPING)
    wait_until(lambda: lookups(beater, "found") >= len(before), what="pre-existing subscriptions looked up")
    # One more subscriber after the beater joined: the meta event teaches it.
    late = wamp.call("com.estrom.register_query", index, "late:1")
    wamp.subscribe(f"docs-for-{late}")
    wait_for_sweeps(beater, 2)

    found = lookups(beater, "found")
    wait_for_sweeps(beater, 4)
    assert lookups(beater, "found") == found
    assert lookups(beater, "gone") == lookups(beater, "failed") == 0
    assert all(stored(engine, index, s)["estrom_active"] for s in [*before, late])

    # The link breaks, the beater rejoins: ids it knew may mean nothing now, so
    # it learns every subscription again, once.
    router_link.reset()
    wait_until(lambda: lookups(beater, "found") >= found + len(before) + 1, what="lookups after rejoin")
    wait_for_sweeps(beater, 2)
    relearned = lookups(beater, "found")
    wait_for_sweeps(beater, 3)
    assert lookups(beater, "found") == relearned
    assert all(stored(engine, index, s)["estrom_active"] for s in [*before, late])
    assert "Unhandled error" not in beater_log(beater)


def test_a_percolator_index_deleted_under_a_running_beater_is_recreated_with_its_mapping(
    beater: ServiceHandle, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    """Issue 12 bug 2: _bulk must not auto-create it with dynamic mappings (matching nothing)."""
    first = wamp.call("com.estrom.register_query", index, "kind:before")
    wamp.subscribe(f"docs-for-{first}")
    assert ingest(beater.url, index, {"kind": "before"}).json()["published"] == 1
    # The shared percolator index holding its queries (the target's alias leads to it).
    shared = list(engine_request(engine.url, "GET", f"/estrom-queries-{index}/_alias"))
    assert len(shared) == 1
    assert shared[0].startswith("estrom-queries-_shared-")  # _shared-0 unless the session filled it
    engine_request(engine.url, "DELETE", f"/{shared[0]}")  # an operator, a snapshot restore

    sid = wamp.call("com.estrom.register_query", index, "kind:after AND level:error")
    properties = percolator_properties(engine, index)
    assert properties["estrom_query"] == {"type": "percolator"}
    assert properties["kind"]["type"] == "text"
    sink = wamp.subscribe(f"docs-for-{sid}")
    assert (
        ingest(beater.url, index, {"kind": "after", "level": "error", "marker": "m"}).json()["published"] == 1
    )
    sink.wait_for_marker("m")


def test_a_prefix_subscription_to_every_sid_stops_only_deactivation(
    start_beater: StartService, wamp: WampClient, admin_wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    """Issue 12 bug 3: activation and mapping sync still run (collection too: it finds nothing idle)."""
    beater = start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="0.5")
    sid = wamp.call("com.estrom.register_query", index, "kind:held")
    wait_until(
        lambda: stored(engine, index, sid)["estrom_active"] is False, what="unsubscribed query deactivated"
    )
    sink = admin_wamp.subscribe("docs-for-", match="prefix")
    # Activation: the prefix subscription covers it, the sweep percolates it again.
    wait_until(lambda: stored(engine, index, sid)["estrom_active"] is True, what="activated under a prefix")
    assert ingest(beater.url, index, {"kind": "held", "marker": "held"}).json()["published"] == 1
    sink.wait_for_marker("held")
    # Mapping sync: a field the document index learns reaches the percolator.
    engine_request(
        engine.url, "PUT", f"/{index}", {"mappings": {"properties": {"latency": {"type": "long"}}}}
    )

    def percolator_type() -> str | None:
        return percolator_properties(engine, index).get("latency", {}).get("type")

    assert wait_until(percolator_type, what="latency mapped under a prefix subscription") == "long"
