"""Read targets: patterns, lists, exclusions, aliases, several beaters; real engine and router."""

from __future__ import annotations

import pytest
from autobahn.wamp.exception import ApplicationError

from common.query.targets import parse_target, percolator_suffix
from devstack.metrics_page import metric as scraped
from devstack.wamp_client import WampClient
from tests.data_streams import put_data_stream_template
from tests.http_client import engine_request, http, ingest
from tests.real_stack import EngineHandle, ServiceHandle, StartService
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FAST_SWEEPS = {"ESTROM_QUERY_GRACE": "600", "ESTROM_QUERY_SWEEP_INTERVAL": "0.5"}


def published(beater: ServiceHandle, index: str, doc: dict | list[dict]) -> int:
    resp = ingest(beater.url, index, doc)
    assert resp.status == 200, resp.body
    return int(resp.json()["published"])


def metric(service: ServiceHandle, name: str) -> float:
    return scraped(service.url, name)


def wait_for_sweeps(service: ServiceHandle, n: int = 2) -> None:
    """Until ``n`` more sweeps ended (the last one started after this call)."""
    name = "estrom_beater_lifecycle_sweeps_total"
    before = metric(service, name)
    wait_until(lambda: metric(service, name) >= before + n, what=f"{n} more sweeps")


def test_a_daily_pattern_covers_tomorrows_index_from_its_first_document(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sid = wamp.call("com.estrom.register_query", f"{index}-logstash-*", "level:error")
    sink = wamp.subscribe(f"docs-for-{sid}")
    day1, day2 = f"{index}-logstash-2026.12.01", f"{index}-logstash-2026.12.02"
    assert published(beater, day1, {"level": "error", "n": 1}) == 1
    # Midnight: a new index, never seen by the beater nor the engine.
    assert published(beater, day2, {"level": "error", "n": 2, "marker": "day2"}) == 1
    assert published(beater, f"{index}-other", {"level": "error", "n": 3}) == 0
    hits = sink.wait_for_marker("day2")
    assert hits == [
        {"_index": day1, "_source": {"level": "error", "n": 1}},
        {"_index": day2, "_source": {"level": "error", "n": 2, "marker": "day2"}},
    ]


def test_a_list_of_two_service_indices(beater: ServiceHandle, wamp: WampClient, index: str) -> None:
    api, web = f"{index}-api", f"{index}-web"
    sid = wamp.call("com.estrom.register_query", f"{web},{api}", "level:error")
    sink = wamp.subscribe(f"docs-for-{sid}")
    assert published(beater, api, {"level": "error", "n": 1}) == 1
    assert published(beater, f"{index}-db", {"level": "error", "n": 2}) == 0
    assert published(beater, web, {"level": "error", "n": 3, "marker": "web"}) == 1
    assert [(h["_index"], h["_source"]["n"]) for h in sink.wait_for_marker("web")] == [(api, 1), (web, 3)]


def test_exclusions_remove_what_they_match_from_what_came_before(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sid = wamp.call("com.estrom.register_query", f"{index}-*,-{index}-debug-*", "kind:x")
    sink = wamp.subscribe(f"docs-for-{sid}")
    assert published(beater, f"{index}-app", {"kind": "x", "n": 1}) == 1
    assert published(beater, f"{index}-debug-1", {"kind": "x", "n": 2}) == 0
    assert published(beater, f"{index}-app2", {"kind": "x", "n": 3, "marker": "end"}) == 1
    assert [h["_source"]["n"] for h in sink.wait_for_marker("end")] == [1, 3]


def test_permutations_and_duplicates_are_one_target_and_describe_returns_it(
    wamp: WampClient, index: str
) -> None:
    a, b = f"{index}-a", f"{index}-b"
    sids = {
        wamp.call("com.estrom.register_query", t, "level:error")
        for t in (f"{a},{b}", f"{b},{a}", f"{b},{a},{b}")
    }
    assert len(sids) == 1
    sid = sids.pop()
    assert wamp.call("com.estrom.describe_query", sid) == {
        "sid": sid,
        "index": f"{a},{b}",
        "query": "level:error",
    }
    others = {
        wamp.call("com.estrom.register_query", t, "level:error")
        for t in (f"{index}-*", f"{index}-2026.*", a, f"{index}-*,-{a}", f"{a},{index}-c")
    }
    assert len(others) == 5
    assert sid not in others
    # A concrete index keeps the sid it always had: its canonical target is its name.
    assert (
        wamp.call("com.estrom.describe_query", wamp.call("com.estrom.register_query", a, "x"))["index"] == a
    )


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("a,,b", "empty segment"),
        ("a,", "empty segment"),
        ("-logs-*", "only exclusions"),
        ("logs-*,-", "empty exclusion"),
        ("a,-a", "must follow a wildcard"),
        ("Logs-*", "lowercase"),
        ("logs-*,_x", "must not start with"),
        ("logs-?", "'*' only"),
    ],
)
def test_bad_targets_are_invalid_index_with_a_reason(wamp: WampClient, target: str, reason: str) -> None:
    with pytest.raises(ApplicationError) as err:
        wamp.call("com.estrom.register_query", target, "x")
    assert err.value.error == "com.estrom.error.invalid_index"
    assert reason in err.value.args[0]


def test_an_alias_added_and_removed_while_a_tail_runs(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    beater = start_beater(**FAST_SWEEPS)
    concrete, alias = f"{index}-000001", f"{index}-current"
    engine_request(engine.url, "PUT", f"/{concrete}")
    sid = wamp.call("com.estrom.register_query", alias, "kind:x")
    sink = wamp.subscribe(f"docs-for-{sid}")
    assert published(beater, concrete, {"kind": "x", "n": 0}) == 0

    engine_request(
        engine.url, "POST", "/_aliases", {"actions": [{"add": {"index": concrete, "alias": alias}}]}
    )
    wait_for_sweeps(beater)  # an alias change is seen within one sweep
    assert published(beater, concrete, {"kind": "x", "n": 1, "marker": "aliased"}) == 1
    assert sink.wait_for_marker("aliased") == [
        {"_index": concrete, "_source": {"kind": "x", "n": 1, "marker": "aliased"}}
    ]

    engine_request(
        engine.url, "POST", "/_aliases", {"actions": [{"remove": {"index": concrete, "alias": alias}}]}
    )
    wait_for_sweeps(beater)
    assert published(beater, concrete, {"kind": "x", "n": 2}) == 0


def test_a_pattern_matching_an_alias_covers_the_indices_behind_it(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    beater = start_beater(**FAST_SWEEPS)
    concrete = f"other-{index}"
    engine_request(engine.url, "PUT", f"/{concrete}", {"aliases": {f"{index}-alias": {}}})
    sid = wamp.call("com.estrom.register_query", f"{index}-*", "kind:x")
    wamp.subscribe(f"docs-for-{sid}")
    wait_for_sweeps(beater)
    assert published(beater, concrete, {"kind": "x"}) == 1


def test_a_target_registered_through_one_beater_is_matched_by_all(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    # Slow sweeps: what a beater learns, it learns from the subscription or the registration.
    beaters = [start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600") for _ in range(2)]
    # Other tests' targets live in the same engine: count from what each beater knew on joining.
    known = [metric(beater, "estrom_beater_read_targets") for beater in beaters]
    targets = [f"{index}-a-*", f"{index}-b-*"]
    sids = [wamp.call("com.estrom.register_query", t, "kind:x") for t in targets]
    sinks = [wamp.subscribe(f"docs-for-{sid}") for sid in sids]
    for beater, before in zip(beaters, known, strict=True):
        wait_until(
            lambda beater=beater, before=before: metric(beater, "estrom_beater_read_targets") >= before + 2,
            what="both targets known to every beater",
        )
    for n, beater in enumerate(beaters):
        assert published(beater, f"{index}-a-{n}", {"kind": "x", "marker": f"a{n}"}) == 1
        assert published(beater, f"{index}-b-{n}", {"kind": "x", "marker": f"b{n}"}) == 1
    assert [h["_index"] for h in sinks[0].wait_for_marker("a1")] == [f"{index}-a-0", f"{index}-a-1"]
    assert [h["_index"] for h in sinks[1].wait_for_marker("b1")] == [f"{index}-b-0", f"{index}-b-1"]


def test_a_target_registered_through_another_beater_is_matched_before_this_one_learns_of_it(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    # No sweep and no subscription tell a beater of a target registered
    # through the other: it still matches it from its first batch (queries
    # registered since shortly before its last read of the targets are
    # percolated whatever their target, and kept if it covers the index).
    beaters = [start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600") for _ in range(2)]
    known = [metric(beater, "estrom_beater_read_targets") for beater in beaters]
    # Round robin: of four registrations, each beater answers some, never all.
    targets = [f"{index}-w{k}-*" for k in range(4)]
    for target in targets:
        wamp.call("com.estrom.register_query", target, "kind:x")
    for beater in beaters:
        for k in range(4):
            assert published(beater, f"{index}-w{k}-1", {"kind": "x"}) == 1
        assert published(beater, f"{index}-other", {"kind": "x"}) == 0
    # Having matched them, each beater knows all four (they are in its covering filter from now on).
    for beater, before in zip(beaters, known, strict=True):
        assert metric(beater, "estrom_beater_read_targets") >= before + 4


def test_hits_ingested_through_an_alias_carry_the_concrete_index(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    beater = start_beater(**FAST_SWEEPS)
    concrete, alias = f"{index}-000001", f"{index}-write"
    engine_request(engine.url, "PUT", f"/{concrete}", {"aliases": {alias: {"is_write_index": True}}})
    on_pattern = wamp.call("com.estrom.register_query", f"{index}-*", "kind:x")
    on_concrete = wamp.call("com.estrom.register_query", concrete, "kind:x")
    sinks = [wamp.subscribe(f"docs-for-{sid}") for sid in (on_pattern, on_concrete)]
    wait_for_sweeps(beater)  # the alias is known within one sweep
    # As a shipper writes it: through the alias, which the engine would resolve to its write index.
    assert published(beater, alias, {"kind": "x", "marker": "w"}) == 2
    for sink in sinks:
        assert sink.wait_for_marker("w") == [{"_index": concrete, "_source": {"kind": "x", "marker": "w"}}]


def test_a_restarted_beater_knows_the_targets_before_its_first_sweep(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    first = start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600")
    sid = wamp.call("com.estrom.register_query", f"{index}-*", "kind:x")
    sink = wamp.subscribe(f"docs-for-{sid}")
    first.stop()
    later = start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600")
    wait_until(lambda: metric(later, "estrom_beater_read_targets") >= 1, what="target learned on join")
    assert published(later, f"{index}-x", {"kind": "x", "marker": "later"}) == 1
    sink.wait_for_marker("later")


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


def test_backfill_reads_across_three_daily_indices_newest_first(
    tailor: ServiceHandle, beater: ServiceHandle, engine: EngineHandle, index: str
) -> None:
    days = [f"{index}-2026.12.0{d}" for d in (1, 2, 3)]
    # Interleaved: the newest documents are spread over all three indices.
    stored = {
        days[0]: [("00:00:01", 1), ("00:00:05", 5), ("00:00:08", 8)],
        days[1]: [("00:00:02", 2), ("00:00:06", 6), ("00:00:09", 9)],
        days[2]: [("00:00:03", 3), ("00:00:04", 4), ("00:00:07", 7)],
    }
    for day, docs in stored.items():
        lines = []
        for ts, n in docs:
            lines += ['{"index": {}}', f'{{"@timestamp": "2026-12-01T{ts}Z", "level": "error", "n": {n}}}']
        resp = http(
            "POST",
            f"{engine.url}/{day}/_bulk?refresh=true",
            "\n".join(lines) + "\n",
            {"content-type": "application/x-ndjson"},
        )
        assert resp.status == 200, resp.body
    tail = Tail(tailor.url, {"i": f"{index}-*", "q": "level:error", "n": 5})
    try:
        assert tail.status == 200
        backfilled = tail.wait_hits(5)
        assert [(h["_index"], h["_source"]["n"]) for h in backfilled] == [
            (days[0], 5),
            (days[1], 6),
            (days[2], 7),
            (days[0], 8),
            (days[1], 9),
        ]
        # Then live, from an index that did not exist: no gap, no duplicate.
        ingest(beater.url, f"{index}-2026.12.04", {"level": "error", "n": 10})
        hits = tail.wait_hits(6)
    finally:
        tail.close()
    assert [h["_source"]["n"] for h in hits] == [5, 6, 7, 8, 9, 10]
    assert hits[5]["_index"] == f"{index}-2026.12.04"


def test_the_tailor_refuses_a_bad_target_with_invalid_index(tailor: ServiceHandle, index: str) -> None:
    tail = Tail(tailor.url, {"i": f"{index}-*,,x", "q": "x"})
    assert tail.status == 400
    body = tail.json_body()
    assert body["error"] == "invalid_index"
    assert "empty segment" in body["reason"]


def test_a_data_stream_written_through_its_name(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    put_data_stream_template(engine.url, index, f"{index}-ds-*")
    beater = start_beater(**FAST_SWEEPS)
    stream = f"{index}-ds-nginx"
    try:
        engine_request(
            engine.url, "POST", f"/{stream}/_doc?refresh=true", {"@timestamp": "2026-12-01T00:00:00Z"}
        )
        sid = wamp.call("com.estrom.register_query", f"{index}-ds-*", "kind:x")
        sink = wamp.subscribe(f"docs-for-{sid}")
        wait_for_sweeps(beater)
        assert published(beater, stream, {"kind": "x", "marker": "ds"}) == 1
        # _index: the concrete index the document went to, the stream's write (backing) index.
        backing = engine_request(engine.url, "GET", f"/_data_stream/{stream}")["data_streams"][0]["indices"]
        assert sink.wait_for_marker("ds")[0]["_index"] == backing[-1]["index_name"]
    finally:
        http("DELETE", f"{engine.url}/_data_stream/{stream}")
        http("DELETE", f"{engine.url}/_index_template/{index}")


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


def test_a_query_placed_apart_through_another_beater_is_matched_from_the_first_batch(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    """A query kept out of ``_shared-0`` by a type conflict, registered through one beater, is
    matched by every other from its first batch, with no sweep or subscription to tell them
    (its signpost in ``_shared-0`` does)."""
    beaters = [start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600") for _ in range(2)]
    field = f"code_{index.replace('-', '_')}"  # no other test's documents map it
    texts, numbers = f"{index}-texts", f"{index}-numbers"
    for name, kind in ((texts, "keyword"), (numbers, "long")):
        engine_request(engine.url, "PUT", f"/{name}", {"mappings": {"properties": {field: {"type": kind}}}})
    # Round robin over these beaters and the session's: every beater registers one of the three
    # on ``texts`` (it knows that target in ``_shared-0``), one of them the one on ``numbers``.
    for k in range(3):
        wamp.call("com.estrom.register_query", texts, f"{field}:[100 TO 200] AND k:{k}")
    wamp.call("com.estrom.register_query", numbers, f"{field}:[100 TO 200]")
    holders = set(engine_request(engine.url, "GET", f"/estrom-queries-{numbers}/_alias"))
    assert holders
    assert "estrom-queries-_shared-0" not in holders
    for beater in beaters:
        # As numbers, 1000 is not between 100 and 200; as keywords "1000" would be.
        assert published(beater, numbers, [{field: 1000, "k": 0}, {field: 150, "k": 1}]) == 1
        assert published(beater, texts, [{field: "1000", "k": 2}]) == 1
