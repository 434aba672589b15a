"""Field types of a read target: from the templates and indices it covers, kept apart where targets disagree.

A query compares values as the target's documents are mapped (``1000`` is
not between 100 and 200 as a number, but is as a keyword); targets that map
a field differently have their queries in different shared percolator
indices.
"""

from __future__ import annotations

import uuid

import pytest

from common.query.targets import parse_target, percolator_suffix
from devstack.stack import Stack
from devstack.wamp_client import WampClient
from tests.http_client import engine_request, ingest
from tests.integration.read_target_checks import FAST_SWEEPS, metric, published, wait_for_sweeps
from tests.real_stack import EngineHandle, ServiceHandle, StartService
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_field_types_come_from_the_templates_of_the_names_a_pattern_matches(
    beater: ServiceHandle, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    engine_request(
        engine.url,
        "PUT",
        f"/_index_template/{index}",
        {
            "index_patterns": [f"{index}-*"],
            "priority": 500,
            "template": {"mappings": {"properties": {"latency": {"type": "long"}}}},
        },
    )
    engine_request(
        engine.url,
        "PUT",
        f"/_template/{index}-legacy",
        {"index_patterns": [f"{index}-*"], "mappings": {"properties": {"bytes": {"type": "long"}}}},
    )
    try:
        sid = wamp.call("com.estrom.register_query", f"{index}-*", "latency:[100 TO 200] OR bytes:[10 TO 20]")
        sink = wamp.subscribe(f"docs-for-{sid}")
        # No index exists yet: as text, "1000" and "150" would both sort between "100" and "200".
        docs = [
            {"latency": 1000, "n": 1},
            {"latency": 150, "n": 2},
            {"bytes": 100, "n": 3},
            {"bytes": 15, "n": 4, "marker": "end"},
        ]
        resp = ingest(beater.url, f"{index}-2026.12.02", docs)
        assert resp.json()["published"] == 2
        assert [h["_source"]["n"] for h in sink.wait_for_marker("end")] == [2, 4]
    finally:
        engine_request(engine.url, "DELETE", f"/_index_template/{index}")
        engine_request(engine.url, "DELETE", f"/_template/{index}-legacy")


def test_covered_indices_that_disagree_on_a_type_the_last_name_wins(
    beater: ServiceHandle, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    older, newer = f"{index}-2026.12.01", f"{index}-2026.12.02"
    engine_request(
        engine.url, "PUT", f"/{older}", {"mappings": {"properties": {"code": {"type": "keyword"}}}}
    )
    engine_request(engine.url, "PUT", f"/{newer}", {"mappings": {"properties": {"code": {"type": "long"}}}})
    sid = wamp.call("com.estrom.register_query", f"{index}-*", "code:[100 TO 200]")
    sink = wamp.subscribe(f"docs-for-{sid}")
    # The target's own address: a filtered alias on the shared percolator index holding its queries.
    pindex = "estrom-queries-" + percolator_suffix(parse_target(f"{index}-*"))
    mapping = engine_request(engine.url, "GET", f"/{pindex}/_mapping/field/code")
    assert [m["mappings"]["code"]["mapping"]["code"]["type"] for m in mapping.values()] == ["long"]
    # Compared as numbers in both indices: 1000 is not between 100 and 200, whichever index it is in.
    assert published(beater, older, {"code": 1000}) == 0
    assert published(beater, older, {"code": 150, "marker": "end"}) == 1
    sink.wait_for_marker("end")


def test_targets_that_disagree_on_a_type_each_match_with_their_own(
    beater: ServiceHandle, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    """One shared percolator index has one type per field: such targets' queries are kept apart."""
    texts, numbers, more_texts = f"{index}-a-1", f"{index}-b-1", f"{index}-c-1"
    for name, kind in ((texts, "keyword"), (numbers, "long"), (more_texts, "keyword")):
        engine_request(engine.url, "PUT", f"/{name}", {"mappings": {"properties": {"code": {"type": kind}}}})
    on_texts = wamp.call("com.estrom.register_query", f"{index}-a-*", "code:[100 TO 200]")
    on_numbers = wamp.call("com.estrom.register_query", f"{index}-b-*", "code:[100 TO 200]")
    on_more = wamp.call("com.estrom.register_query", f"{index}-c-*", "code:[100 TO 200]")
    sinks = {sid: wamp.subscribe(f"docs-for-{sid}") for sid in (on_texts, on_numbers, on_more)}

    def shared_of(target: str) -> set[str]:
        alias = "estrom-queries-" + percolator_suffix(parse_target(target))
        return set(engine_request(engine.url, "GET", f"/{alias}/_alias"))

    assert shared_of(f"{index}-a-*").isdisjoint(shared_of(f"{index}-b-*"))
    assert shared_of(f"{index}-a-*") == shared_of(f"{index}-c-*")  # same types: one index
    # As keywords, "1000" sorts between "100" and "200"; as numbers, 1000 is not between them.
    assert published(beater, texts, [{"code": "1000", "n": 1}, {"code": "150", "n": 2}]) == 2
    assert published(beater, numbers, [{"code": 1000, "n": 3}, {"code": 150, "n": 4, "marker": "b"}]) == 1
    assert published(beater, more_texts, {"code": "1000", "n": 5, "marker": "c"}) == 1
    assert [h["_source"]["n"] for h in sinks[on_numbers].wait_for_marker("b")] == [4]
    assert [h["_source"]["n"] for h in sinks[on_more].wait_for_marker("c")] == [5]
    assert [h["_source"]["n"] for h in sinks[on_texts].wait_for_count(2)] == [1, 2]


def test_a_field_that_is_a_value_in_one_target_and_an_object_in_another(
    beater: ServiceHandle, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    """Logstash's ``host`` is a string in one pipeline and ECS's object in the next: documents of
    either shape still match their own target's queries, whatever the other target mapped."""
    flat, nested = f"{index}-flat", f"{index}-ecs"
    engine_request(engine.url, "PUT", f"/{flat}", {"mappings": {"properties": {"host": {"type": "keyword"}}}})
    on_flat = wamp.call("com.estrom.register_query", flat, "host:web-1")
    on_nested = wamp.call("com.estrom.register_query", nested, "n:7")
    flat_sink = wamp.subscribe(f"docs-for-{on_flat}")
    nested_sink = wamp.subscribe(f"docs-for-{on_nested}")
    assert published(beater, nested, {"n": 7, "host": {"name": "web-1"}, "marker": "ecs"}) == 1
    assert published(beater, flat, {"host": "web-1", "marker": "flat"}) == 1
    assert [h["_source"]["host"] for h in nested_sink.wait_for_marker("ecs")] == [{"name": "web-1"}]
    assert [h["_source"]["host"] for h in flat_sink.wait_for_marker("flat")] == ["web-1"]


def test_a_query_naming_a_field_another_target_maps_as_a_value_matches_with_its_own(
    beater: ServiceHandle, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    """``host.name:web-1`` on an ECS target, after a Logstash target mapped ``host`` as a keyword:
    the query goes where ``host`` is an object, and both targets' queries match."""
    flat, nested = f"{index}-flat", f"{index}-ecs"
    engine_request(engine.url, "PUT", f"/{flat}", {"mappings": {"properties": {"host": {"type": "keyword"}}}})
    engine_request(
        engine.url,
        "PUT",
        f"/{nested}",
        {"mappings": {"properties": {"host": {"properties": {"name": {"type": "keyword"}}}}}},
    )
    on_flat = wamp.call("com.estrom.register_query", flat, "host:web-1")
    on_nested = wamp.call("com.estrom.register_query", nested, "host.name:web-1")

    def shared_of(target: str) -> set[str]:
        return set(engine_request(engine.url, "GET", f"/estrom-queries-{target}/_alias"))

    assert shared_of(flat).isdisjoint(shared_of(nested))
    flat_sink = wamp.subscribe(f"docs-for-{on_flat}")
    nested_sink = wamp.subscribe(f"docs-for-{on_nested}")
    assert (
        published(beater, nested, [{"host": {"name": "web-2"}}, {"host": {"name": "web-1"}, "marker": "ecs"}])
        == 1
    )
    assert published(beater, flat, [{"host": "web-2"}, {"host": "web-1", "marker": "flat"}]) == 1
    assert [h["_source"]["host"] for h in nested_sink.wait_for_marker("ecs")] == [{"name": "web-1"}]
    assert [h["_source"]["host"] for h in flat_sink.wait_for_marker("flat")] == ["web-1"]


def test_a_document_field_the_shared_index_refuses_is_asked_once_not_at_every_sweep(
    stack: Stack, start_beater: StartService, index: str
) -> None:
    # ``root`` is a value in one target's documents and, later, an object in the other's: the
    # shared index holding both targets' queries can never map ``root.name``, nor an alias of it.
    # Asking again at every sweep cost one engine request per such field each time (hundreds for
    # ECS documents arriving beside older ones).
    root = f"f{uuid.uuid4().hex[:10]}"
    # This beater alone stores and sweeps these queries, in shared indices of their own.
    router = stack.start_router(f"refused-{root}")
    beater = start_beater(
        router_url=router.service_url, ESTROM_QUERY_INDEX_PREFIX=f"q-{root}-", **FAST_SWEEPS
    )
    wamp = WampClient(router.url)
    try:
        # Stored in the engine, as a shipper's documents are: the targets' field types come from there.
        engine_request(stack.engine.url, "POST", f"/{index}-a/_doc?refresh=true", {root: "x"})
        engine_request(stack.engine.url, "POST", f"/{index}-b/_doc?refresh=true", {"msg": "m"})
        for target, query in ((f"{index}-a", f"{root}:x"), (f"{index}-b", "msg:m")):
            wamp.subscribe(f"docs-for-{wamp.call('com.estrom.register_query', target, query)}")
        # Later documents of b bring the object, and an alias of a field in it.
        later = {
            root: {"properties": {"name": {"type": "keyword"}}},
            f"{root}_alias": {"type": "alias", "path": f"{root}.name"},
        }
        engine_request(stack.engine.url, "PUT", f"/{index}-b/_mapping", {"properties": later})
        refused = "estrom_beater_percolator_fields_refused_total"
        # ``root.name`` is under a value there: never asked. Its alias is asked once, and refused.
        wait_until(lambda: metric(beater, refused) >= 1, what=f"{root}_alias refused")
        wait_for_sweeps(beater, 3)
        assert metric(beater, refused) == 1
        assert published(beater, f"{index}-b", {root: {"name": "z"}, "msg": "m"}) == 1
    finally:
        wamp.close()
        router.stop()
