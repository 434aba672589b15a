"""Queries cannot fill the shared percolator index's mapping for everyone, and a full one is repaired.

Every field a query names is mapped in the shared percolator index before
the query is stored, and that index has one field limit for every target.
Tails naming a thousand invented fields each once filled it: from then on
documents with a new field were refused at ingest, large queries got 503
and, after a restart, every query on a field the index had not seen failed.
At small scale here, on a router, beaters, a tailor and a percolator index
prefix of the test's own (nothing else registers there):

* a query naming more fields than ``ESTROM_QUERY_MAX_FIELDS``, and the query
  that would take a target's new fields past ``ESTROM_FIELDS_PER_TARGET``,
  are a 400 naming the setting, over WAMP and from the tailor; every other
  target keeps registering, ingest of documents with new fields goes on and
  is delivered, before and after a beater restart;
* a reader's budget (``ESTROM_FIELDS_PER_PRINCIPAL``) across targets, as a
  trusted principal names the reader;
* a shared index left at its field limit (as an older beater left it): ingest
  of new fields still delivered, a query on a field documents have placed in
  the next shared index, and on restart the index is rebuilt with only the
  fields its queries name, every query matching as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from beater.store.schema import count_fields
from common import contract
from devstack.metrics_page import metric
from devstack.stack import Stack
from devstack.wamp_client import EventSink, WampClient
from tests.http_client import engine_request, http, ingest
from tests.real_stack import EngineHandle, RouterHandle, StartService, admin_client
from tests.tailor.tail_client import docs_path
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

#: Small budgets, so the attack fits in a test.
BUDGETS = {
    "ESTROM_QUERY_MAX_FIELDS": "20",
    "ESTROM_FIELDS_PER_TARGET": "40",
    "ESTROM_FIELDS_PER_PRINCIPAL": "60",
}


@dataclass
class Own:
    """A router of the test's own (so only its beaters serve the procedures) and an index prefix."""

    router: RouterHandle
    prefix: str
    settings: dict[str, str]

    @property
    def shared(self) -> str:
        return self.prefix + "_shared-0"


@pytest.fixture
def own(stack: Stack, engine: EngineHandle, index: str) -> Iterator[Own]:
    router = stack.start_router(f"router-{index}")
    prefix = f"mb-{uuid.uuid4().hex[:8]}-"
    try:
        yield Own(router, prefix, {"ESTROM_QUERY_INDEX_PREFIX": prefix})
    finally:
        router.stop()
        for pattern in (prefix + "*", index + "*"):
            http("DELETE", f"{engine.url}/{pattern}")


def invented(tag: str, n: int) -> str:
    """A query string naming ``n`` fields no index maps."""
    return " OR ".join(f"{tag}_{i}:x" for i in range(n))


def refusal(client: WampClient, index: str, query: Any, **kwargs: Any) -> str:
    with pytest.raises(ApplicationError) as err:
        client.call(contract.REGISTER_QUERY, index, query, **kwargs)
    assert err.value.error == contract.INVALID_QUERY.uri, err.value
    return str(err.value.args[0])


def tail_status(tailor_url: str, index: str, query: str) -> tuple[int, dict[str, Any]]:
    """Open a tail that ends at once (``timeout=0.01``); its status and, for an error, its body."""
    resp = http("GET", tailor_url + docs_path({"i": index, "q": query, "timeout": "0.01"}))
    return resp.status, (resp.json() if resp.status != 200 else {})


def watch(client: WampClient, index: str, query: Any) -> EventSink:
    sid = client.call(contract.REGISTER_QUERY, index, query)
    return client.subscribe(contract.topic_for(sid))


def delivered(beater_url: str, index: str, sink: EventSink, doc: dict[str, Any]) -> None:
    resp = ingest(beater_url, index, doc)
    assert resp.status == 200, resp.body
    assert resp.json()["rejected"] == [], resp.body
    sink.wait_for_marker(doc["marker"])


def test_a_full_field_budget_refuses_one_target_and_nobody_else(
    own: Own, start_beater: StartService, start_tailor: StartService, engine: EngineHandle, index: str
) -> None:
    settings = own.settings | BUDGETS
    beater = start_beater(router_url=own.router.service_url, **settings)
    tailor = start_tailor(router_url=own.router.service_url, **settings)
    target_a, target_b, target_c = f"{index}-a", f"{index}-b", f"{index}-c"
    # Target a's index exists and maps ``level``: a field its documents have costs no budget.
    engine_request(
        engine.url, "PUT", f"/{target_a}", {"mappings": {"properties": {"level": {"type": "keyword"}}}}
    )
    client = WampClient(own.router.url)
    try:
        # One query naming more fields than a query may: 400 naming the setting, at the tailor
        # (which checks first) and from the beater.
        status, body = tail_status(tailor.url, target_a, invented("wide", 21))
        assert (status, body["error"]) == (400, "invalid_query")
        assert "ESTROM_QUERY_MAX_FIELDS" in body["reason"]
        assert "ESTROM_QUERY_MAX_FIELDS" in refusal(client, target_a, invented("wide", 21))

        # The attack at small scale: queries of 20 invented fields each on target a.
        assert tail_status(tailor.url, target_a, invented("evil0", 20))[0] == 200
        client.call(contract.REGISTER_QUERY, target_a, invented("evil1", 20))
        # (a) the budget is full: a 400 naming it, never a 503.
        status, body = tail_status(tailor.url, target_a, invented("evil2", 20))
        assert status == 400, body
        assert body["error"] == "invalid_query"
        assert "ESTROM_FIELDS_PER_TARGET" in body["reason"]
        assert "40" in body["reason"]
        reason = refusal(client, target_a, invented("evil3", 1))
        assert "ESTROM_FIELDS_PER_TARGET" in reason
        assert target_a in reason
        assert (
            metric(beater.url, "estrom_beater_queries_refused_total", limit="ESTROM_FIELDS_PER_TARGET") >= 2
        )
        # Fields already counted, and fields target a's index maps, cost nothing.
        assert len(client.call(contract.REGISTER_QUERY, target_a, "evil0_3:y AND evil1_7:z")) == 16
        on_a = watch(client, target_a, "level:error")

        # (b) another target registers, invented fields and all.
        on_b = watch(client, target_b, invented("other", 20))
        assert tail_status(tailor.url, target_b, "other_0:x AND level:warn")[0] == 200

        # (c) documents with fields nobody mapped go through and are delivered, into any index.
        free_text = watch(client, target_c, "timeout")
        delivered(beater.url, target_a, on_a, {"level": "error", "never_seen_a": 1, "marker": "a1"})
        delivered(
            beater.url, target_b, on_b, {"other_3": "x", "never_seen_b": {"deep": True}, "marker": "b1"}
        )
        delivered(beater.url, target_c, free_text, {"never_seen_c": "upstream timeout", "marker": "c1"})
    finally:
        client.close()

    # (d) a restart: the budget is still full (it is read from the stored queries), other
    # targets still register, and ingest still delivers.
    beater.stop()
    beater = start_beater(router_url=own.router.service_url, **settings)
    client = WampClient(own.router.url)
    try:
        assert "ESTROM_FIELDS_PER_TARGET" in refusal(client, target_a, invented("evil4", 5))
        on_d = watch(client, f"{index}-d", invented("fresh", 20))
        delivered(beater.url, f"{index}-d", on_d, {"fresh_9": "x", "never_seen_d": 2, "marker": "d1"})
        assert tail_status(tailor.url, f"{index}-e", invented("late", 20))[0] == 200
    finally:
        client.close()


def test_a_reader_s_field_budget_spans_its_targets(own: Own, start_beater: StartService, index: str) -> None:
    start_beater(router_url=own.router.service_url, **(own.settings | BUDGETS))
    # The tailor registers for its HTTP callers and may name them (``principal``): a trusted
    # principal's word, as the admin's here.
    trusted = admin_client(own.router.url)
    try:
        reader = "anonymous@192.0.2.7"
        for i in range(3):  # 3 x 20 = 60, each target within its own 40
            trusted.call(contract.REGISTER_QUERY, f"{index}-{i}", invented(f"r{i}", 20), principal=reader)
        reason = refusal(trusted, f"{index}-3", invented("r3", 1), principal=reader)
        assert "ESTROM_FIELDS_PER_PRINCIPAL" in reason
        assert reader in reason
        # Another reader, and registrations naming nobody, are not held.
        trusted.call(
            contract.REGISTER_QUERY, f"{index}-3", invented("r3", 20), principal="anonymous@192.0.2.8"
        )
        trusted.call(contract.REGISTER_QUERY, f"{index}-4", invented("r4", 20))
    finally:
        trusted.close()


def fill_to_its_limit(engine: EngineHandle, shared: str, junk: int) -> int:
    """What an older beater left: ``junk`` fields of long-gone queries, the index at its field limit."""
    props = {f"gone_{i}": {"type": "keyword"} for i in range(junk)}
    engine_request(engine.url, "PUT", f"/{shared}/_mapping", {"properties": props})
    mapping = engine_request(engine.url, "GET", f"/{shared}/_mapping")
    used = count_fields(next(iter(mapping.values()))["mappings"]["properties"])
    engine_request(engine.url, "PUT", f"/{shared}/_settings", {"index.mapping.total_fields.limit": used})
    return used


def test_a_shared_index_at_its_field_limit_keeps_ingest_going_and_is_rebuilt_on_start(
    own: Own, start_beater: StartService, engine: EngineHandle, index: str
) -> None:
    # No sweep during the test: the rebuild is the start's.
    settings = own.settings | {"ESTROM_QUERY_SWEEP_INTERVAL": "3600"}
    beater = start_beater(router_url=own.router.service_url, **settings)
    documented = f"{index}-docs"
    engine_request(
        engine.url, "PUT", f"/{documented}", {"mappings": {"properties": {"status": {"type": "keyword"}}}}
    )
    client = WampClient(own.router.url)  # its subscriptions live on across the beater's restart
    try:
        kinds = watch(client, index, "kind:a")
        hosts = watch(client, index, {"match": {"host.name": "web-1"}})
        free_text = watch(client, index, "timeout")
        used = fill_to_its_limit(engine, own.shared, junk=300)

        # At its limit: documents with fields it does not map are still percolated and delivered.
        delivered(beater.url, index, kinds, {"kind": "a", "never_mapped": "v", "marker": "k1"})
        delivered(beater.url, index, free_text, {"brand_new": "upstream timeout", "marker": "t1"})
        assert metric(beater.url, "estrom_beater_percolate_documents_folded_total") >= 2
        # A field no index maps: refused with the index's limit named (400, not 503).
        assert "total_fields.limit" in refusal(client, f"{index}-x", "invented_here:x")
        # A field documents have: placed in the next shared index, and matched.
        statuses = watch(client, documented, "status:failed")
        delivered(beater.url, documented, statuses, {"status": "failed", "also_new": 1, "marker": "s1"})
        assert engine_request(engine.url, "GET", f"/{own.prefix}_shared-1/_count")["count"] == 1

        # A restart rebuilds it: the next generation with the fields its queries name.
        beater.stop()
        beater = start_beater(router_url=own.router.service_url, **settings)

        def rebuilt() -> str | None:
            found = engine_request(engine.url, "GET", f"/{own.shared}/_alias")
            return next((name for name in found if name != own.shared), None)

        generation = wait_until(rebuilt, timeout=60, what="the shared index rebuilt")
        assert generation == own.shared + "_g1"
        mapping = engine_request(engine.url, "GET", f"/{own.shared}/_mapping")[generation]["mappings"]
        assert not [f for f in mapping["properties"] if f.startswith("gone_")]
        assert count_fields(mapping["properties"]) < used // 4
        assert {"kind", "host"} <= set(mapping["properties"])
        assert metric(beater.url, "estrom_beater_percolator_repairs_total", outcome="rebuilt") == 1
        # The target's own address moved with it, holding its three queries.
        assert engine_request(engine.url, "GET", f"/{own.prefix}{index}/_count")["count"] == 3

        # The same subscriptions get their hits: every query was copied.
        delivered(beater.url, index, kinds, {"kind": "a", "marker": "k2"})
        delivered(beater.url, index, hosts, {"host": {"name": "web-1"}, "marker": "h2"})
        delivered(beater.url, index, free_text, {"other_new": "a timeout", "marker": "t2"})
        delivered(beater.url, documented, statuses, {"status": "failed", "marker": "s2"})
        # And a field no index maps registers again.
        fresh = watch(client, f"{index}-x", "invented_here:x")
        delivered(beater.url, f"{index}-x", fresh, {"invented_here": "x", "marker": "x1"})
    finally:
        client.close()
