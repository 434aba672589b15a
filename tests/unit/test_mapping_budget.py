"""The shared percolator index's field room: counting, budgets, placement room, folding, rebuild names (pure)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import ensureDeferred

from beater.matching.folding import fold_unmapped
from beater.matching.refusals import refused_by_a_shard as _refused_by_a_shard
from beater.queries.rpc import principal_of
from beater.store.budget import FieldBudget, FieldBudgetExceeded
from beater.store.events import StoreEvents
from beater.store.field_limit import limit_of
from beater.store.mappings import PercolatorIndices
from beater.store.properties import mapping_cost
from beater.store.repair import Group, IndexRepair
from beater.store.schema import (
    TEXT_WITH_KEYWORD,
    count_fields,
    generation,
    generation_index,
    nest,
    percolator_index_body,
    prune,
    shared_index,
    shared_number,
)
from beater.store.shared_indices import current_indices
from common.metrics import Metrics

P = "estrom-queries-"


# --- counting fields as the engine does ---------------------------------------------


def test_fields_are_counted_as_the_engine_counts_them() -> None:
    # Measured on Elasticsearch 7.17: the schema alone is 18 (a percolator field is 6).
    assert count_fields(percolator_index_body()["mappings"]["properties"]) == 18
    props = {
        "message": TEXT_WITH_KEYWORD,  # a field and its multi-field
        "host": {"properties": {"name": {"type": "keyword"}, "ip": {"type": "ip"}}},  # object + 2
        "n": {"type": "long"},
    }
    assert count_fields(props) == 2 + 3 + 1


def test_the_cost_of_mapping_new_fields_counts_the_objects_they_need() -> None:
    have = {"host": {"properties": {"name": {"type": "keyword"}}}}
    assert mapping_cost(have, {}) == 0
    assert mapping_cost(have, {"host.ip": {"type": "ip"}}) == 1
    assert mapping_cost(have, {"a.b.c": TEXT_WITH_KEYWORD}) == 2 + 2  # a, a.b, c and c.keyword
    assert nest({"a.b": {"type": "long"}, "c": {"type": "keyword"}}) == {
        "a": {"properties": {"b": {"type": "long"}}},
        "c": {"type": "keyword"},
    }


def test_prune_keeps_the_named_fields_and_their_enclosing_objects_as_mapped() -> None:
    props = {
        "kind": TEXT_WITH_KEYWORD,
        "gone": {"type": "keyword"},
        "user": {"type": "nested", "properties": {"id": {"type": "long"}, "junk": {"type": "long"}}},
        "msg": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
    }
    assert prune(props, {"kind", "user.id", "msg.raw", "not.mapped"}) == {
        "kind": TEXT_WITH_KEYWORD,
        "user": {"type": "nested", "properties": {"id": {"type": "long"}}},
        "msg": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
    }


def test_limit_of_reads_the_setting_or_the_engine_default() -> None:
    assert limit_of({"settings": {"index.mapping.total_fields.limit": "250"}}) == 250
    assert limit_of({"settings": {}, "defaults": {"index.mapping.total_fields.limit": "1000"}}) == 1000
    assert limit_of({}) == 1000


# --- names of rebuilt generations ------------------------------------------------------


def test_a_rebuilt_generation_is_the_same_shared_index() -> None:
    assert generation_index(P, 0, 0) == shared_index(P, 0) == P + "_shared-0"
    assert generation_index(P, 2, 3) == P + "_shared-2_g3"
    assert shared_number(P, P + "_shared-2_g3") == 2
    assert generation(P, P + "_shared-2_g3") == 3
    assert generation(P, P + "_shared-2") == 0
    for other in (P + "logs", P + "_shared-x", P + "_shared-1_gx", P + "_shared-1_g", "logs"):
        assert shared_number(P, other) is None


def test_the_index_serving_a_shared_number_is_the_one_its_name_or_alias_names() -> None:
    aliases = {
        P + "_shared-0_g1": {"aliases": {P + "_shared-0": {}, P + "logs": {"filter": {}}}},
        P + "_shared-0_g2": {"aliases": {}},  # being built: serves nothing yet
        P + "_shared-1": {"aliases": {}},
        "logs": {"aliases": {}},
    }
    assert current_indices(P, aliases) == {0: P + "_shared-0_g1", 1: P + "_shared-1"}


# --- room for fields in a shared index --------------------------------------------------


def indices_with_limit(limit: int) -> PercolatorIndices:
    indices = PercolatorIndices(engine=None, prefix=P)  # type: ignore[arg-type]
    indices._limits[0] = limit
    return indices


def test_new_fields_stop_at_three_quarters_of_the_limit_fields_documents_have_at_the_limit() -> None:
    indices = indices_with_limit(100)
    have = {f"f{i}": {"type": "keyword"} for i in range(74)}
    one = {"x": {"type": "keyword"}}
    two = {"x": {"type": "keyword"}, "y": {"type": "keyword"}}
    assert indices._room(None, 0, have, one, frozenset({"x"})) is None  # 75 of 100
    assert indices._room(None, 0, have, two, frozenset({"x"})) == "new"  # 76: a new field past 75
    assert indices._room(None, 0, have, two, frozenset()) is None  # fields documents have
    full = {f"f{i}": {"type": "keyword"} for i in range(100)}
    assert indices._room(None, 0, full, one, frozenset()) == "full"
    assert indices._room(None, 0, full, {}, frozenset()) is None  # nothing to map


# --- budgets ---------------------------------------------------------------------------


class FakeEngine:
    """``search`` answers the distinct ``estrom_new_fields`` of the stored queries matching the term."""

    def __init__(self, stored: list[dict[str, Any]]) -> None:
        self.stored = stored
        self.searches = 0

    def search(self, index: str, body: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        self.searches += 1
        ((field, key),) = body["query"]["term"].items()
        found = sorted({f for doc in self.stored if doc.get(field) == key for f in doc["estrom_new_fields"]})
        size = body["aggs"]["used"]["terms"]["size"]
        return {"aggregations": {"used": {"buckets": [{"key": f} for f in found[:size]]}}}


def test_a_target_s_new_fields_are_bounded_and_fields_counted_already_are_free() -> None:
    es = FakeEngine([{"estrom_target": "a", "estrom_new_fields": ["x1", "x2", "x3"]}])
    budget = FieldBudget(P, per_target=4, per_principal=0)
    budget.check_now(es, "a", None, frozenset({"x4"}))  # 4 of 4
    with pytest.raises(FieldBudgetExceeded) as err:
        budget.check_now(es, "a", None, frozenset({"x5"}))
    assert err.value.limit == "ESTROM_FIELDS_PER_TARGET"
    assert "'a'" in str(err.value)
    assert "over the limit of 4 (ESTROM_FIELDS_PER_TARGET)" in str(err.value)
    budget.check_now(es, "a", None, frozenset({"x1", "x4"}))  # counted already
    budget.check_now(es, "b", None, frozenset({"x5", "x6", "x7", "x8"}))  # another target
    # No new field, or only fields known counted: no engine call at all.
    assert budget.counted("a", None, frozenset())
    assert budget.counted("a", None, frozenset({"x1", "x4"}))
    assert not budget.counted("a", None, frozenset({"x9"}))


def test_what_this_beater_admitted_counts_until_the_engine_shows_it() -> None:
    now = [1000.0]
    es = FakeEngine([])
    budget = FieldBudget(P, per_target=3, per_principal=0, clock=lambda: now[0])
    budget.check_now(es, "a", None, frozenset({"x1", "x2"}))
    with pytest.raises(FieldBudgetExceeded):  # not written yet, counted all the same
        budget.check_now(es, "a", None, frozenset({"x3", "x4"}))
    now[0] += 3600  # long after: only what the engine holds counts (the query was never stored)
    budget.check_now(es, "a", None, frozenset({"x3", "x4"}))


def test_a_reader_s_budget_spans_its_targets_and_anonymous_browsers_have_none() -> None:
    es = FakeEngine(
        [
            {"estrom_target": "a", "estrom_principal": "ann", "estrom_new_fields": ["p1", "p2"]},
            {"estrom_target": "b", "estrom_principal": "ann", "estrom_new_fields": ["p3"]},
        ]
    )
    budget = FieldBudget(P, per_target=10, per_principal=3)
    with pytest.raises(FieldBudgetExceeded) as err:
        budget.check_now(es, "c", "ann", frozenset({"p4"}))
    assert err.value.limit == "ESTROM_FIELDS_PER_PRINCIPAL"
    budget.check_now(es, "c", "bob", frozenset({"p4"}))
    budget.check_now(es, "c", None, frozenset({"p5"}))


def test_who_a_registration_is_counted_for() -> None:
    def details(role: str, authid: str = "x") -> Any:
        return SimpleNamespace(caller_authrole=role, caller_authid=authid)

    assert principal_of(details("reader", "ann"), None) == "ann"
    assert principal_of(details("reader", "ann"), "someone-else") == "ann"  # a reader cannot pick
    assert principal_of(details("tailor"), "anonymous@192.0.2.1") == "anonymous@192.0.2.1"
    assert principal_of(details("tailor"), None) is None
    assert principal_of(details("tailor"), "x" * 300) is None
    assert principal_of(details("browser", "random-per-connection"), "forged") is None
    assert principal_of(None, "forged") is None


# --- documents the index cannot map: folded -------------------------------------------


def test_fields_the_index_does_not_map_are_folded_into_the_default_field() -> None:
    props = {
        "kind": TEXT_WITH_KEYWORD,
        "host": {"properties": {"name": {"type": "keyword"}}},
        "tags": {"properties": {"k": {"type": "keyword"}}},
    }
    doc = {
        "kind": "a",
        "new": "upstream timeout",
        "host": {"name": "web-1", "os": {"family": "linux", "v": 6}},
        "tags": [{"k": "x", "extra": True}, "loose"],
        "host.name": "dotted-is-mapped",
        "missing.path": None,
    }
    folded = fold_unmapped(doc, props)
    assert folded == {
        "kind": "a",
        "host": {"name": "web-1"},
        "tags": [{"k": "x"}, "loose"],
        "host.name": "dotted-is-mapped",
        "estrom_all": ["upstream timeout", "linux", "6", "true"],
    }
    assert doc["host"]["os"] == {"family": "linux", "v": 6}  # the original is left whole
    mapped = {"kind": "a", "host": {"name": "web-1"}}
    assert fold_unmapped(mapped, props) is mapped


def test_a_shard_that_could_not_parse_the_document_refuses_it() -> None:
    partial = {
        "_shards": {
            "failed": 1,
            "failures": [
                {
                    "index": P + "_shared-0",
                    "reason": {
                        "type": "query_shard_exception",
                        "reason": "failed to create query: failed to parse",
                        "caused_by": {
                            "type": "mapper_parsing_exception",
                            "caused_by": {
                                "type": "illegal_argument_exception",
                                "reason": "Limit of total fields",
                            },
                        },
                    },
                }
            ],
        }
    }
    assert _refused_by_a_shard(partial) == "Limit of total fields"
    other = {"_shards": {"failures": [{"reason": {"type": "node_disconnected_exception"}}]}}
    assert _refused_by_a_shard(other) is None
    assert _refused_by_a_shard({"_shards": {"failed": 0}}) is None


# --- metrics ---------------------------------------------------------------------------


def test_store_events_reach_the_metrics_and_are_kept() -> None:
    metrics = Metrics("estrom_beater_", process=False)
    events = StoreEvents(metrics)
    events.inc("queries_refused_total", limit="ESTROM_QUERY_MAX_FIELDS")
    events.inc("queries_refused_total", limit="ESTROM_QUERY_MAX_FIELDS")
    events.set("percolator_fields", 42, index=P + "_shared-0")
    assert metrics.value("queries_refused_total", limit="ESTROM_QUERY_MAX_FIELDS") == 2
    assert metrics.value("percolator_fields", index=P + "_shared-0") == 42
    assert events.value("queries_refused_total", limit="ESTROM_QUERY_MAX_FIELDS") == 2


# --- rebuilding an index at its limit ------------------------------------------------------


class FakeIndicesAPI:
    def __init__(self, es: FakeES) -> None:
        self.es = es

    def create(self, index: str, body: dict[str, Any], ignore: int = 0) -> dict[str, Any]:
        self.es.calls.append(("create", index))
        self.es.created[index] = body
        return {"acknowledged": True}

    def put_settings(self, index: str, body: dict[str, Any]) -> None:
        self.es.calls.append(("put_settings", index, body))

    def put_mapping(self, index: str, body: dict[str, Any]) -> None:
        self.es.calls.append(("put_mapping", index))

    def refresh(self, index: str) -> None:
        self.es.calls.append(("refresh", index))

    def update_aliases(self, body: dict[str, Any]) -> None:
        self.es.calls.append(("update_aliases", body["actions"]))

    def delete(self, index: str, ignore: int = 0) -> None:
        self.es.calls.append(("delete", index))


class FakeES:
    """The old index's documents, and a record of every write."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.calls: list[tuple[Any, ...]] = []
        self.created: dict[str, Any] = {}
        self.indices = FakeIndicesAPI(self)

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        hits = [
            {"_id": d["estrom_sid"], "_source": d, "sort": [d["estrom_sid"]]}
            for d in sorted(self.docs, key=lambda d: d["estrom_sid"])
            if not body.get("search_after") or d["estrom_sid"] > body["search_after"][0]
        ]
        return {"hits": {"hits": hits[: body["size"]]}}

    def bulk(self, body: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(("bulk", len(body) // 2))
        return {"items": [{"index": {"status": 201}} for _ in body[::2]]}


class FakeEngine2:
    def __init__(self, es: FakeES) -> None:
        self.es = es

    async def run(self, fn: Any) -> Any:
        return fn(self.es)


def run_repair(es: FakeES, group: Any) -> bool:
    engine = FakeEngine2(es)
    indices = PercolatorIndices(engine, P)  # type: ignore[arg-type]
    repair = IndexRepair(engine, indices, StoreEvents())  # type: ignore[arg-type]
    done: list[bool] = []
    ensureDeferred(repair._one(group)).addCallback(done.append)
    assert done, "the repair waited on something a fake engine never does"
    return done[0]


def a_group(properties: dict[str, Any], limit: int, **kwargs: Any) -> Any:
    return Group(
        0,
        P + "_shared-0",
        properties,
        limit,
        kwargs.pop("settings", {"index.number_of_shards": "1", "index.number_of_replicas": "0"}),
        kwargs.pop("aliases", {}),
        **kwargs,
    )


JUNK = {f"gone_{i}": {"type": "keyword"} for i in range(200)}
QUERIES = [
    {"estrom_sid": "a" * 16, "estrom_query": {"query_string": {"query": "kind:a"}}, "estrom_target": "logs"},
    {"estrom_sid": "signpost-1-logs", "estrom_query": {"match_all": {}}},
]


def full_of_junk() -> dict[str, Any]:
    return {**percolator_index_body()["mappings"]["properties"], "kind": TEXT_WITH_KEYWORD, **JUNK}


def test_an_index_at_its_limit_is_rebuilt_and_its_names_move_in_one_alias_change() -> None:
    es = FakeES(QUERIES)
    props = full_of_junk()
    aliases = {P + "logs": {"filter": {"term": {"estrom_target": "logs"}}}}
    assert run_repair(es, a_group(props, count_fields(props), aliases=aliases))
    new = P + "_shared-0_g1"
    kept = es.created[new]["mappings"]["properties"]
    assert "kind" in kept
    assert not [f for f in kept if f.startswith("gone_")]
    kinds = [c[0] for c in es.calls]
    assert kinds == ["create", "put_settings", "bulk", "refresh", "update_aliases"]
    assert es.calls[1] == ("put_settings", P + "_shared-0", {"index.blocks.write": True})
    assert es.calls[2] == ("bulk", 2)  # the query and the signpost
    assert es.calls[-1][1] == [
        {"remove_index": {"index": P + "_shared-0"}},
        {"add": {"index": new, "alias": P + "_shared-0"}},
        {"add": {"index": new, "alias": P + "logs", "filter": {"term": {"estrom_target": "logs"}}}},
    ]


def test_an_index_with_room_or_full_of_live_fields_is_left_alone() -> None:
    props = full_of_junk()
    es = FakeES(QUERIES)
    assert not run_repair(es, a_group(props, count_fields(props) * 2))  # at half its limit
    live = [
        {"estrom_sid": f"{i:016x}", "estrom_query": {"term": {f"gone_{i}": "x"}}, "estrom_target": "logs"}
        for i in range(200)
    ]
    es = FakeES(live)
    assert not run_repair(es, a_group(props, count_fields(props)))  # every field is a live query's
    assert not [c for c in es.calls if c[0] != "search"]


def test_a_rebuild_under_way_is_left_to_its_beater_and_one_that_died_is_rolled_back() -> None:
    props = full_of_junk()
    now = int(time.time() * 1000)
    running = a_group(props, count_fields(props), others={P + "_shared-0_g1": now}, top=1)
    es = FakeES(QUERIES)
    assert not run_repair(es, running)
    assert es.calls == []
    died = a_group(
        props,
        count_fields(props),
        others={P + "_shared-0_g1": now - 10 * 60_000},
        top=1,
        settings={"index.blocks.write": "true"},
    )
    es = FakeES(QUERIES)
    assert not run_repair(es, died)
    assert es.calls == [
        ("put_settings", P + "_shared-0", {"index.blocks.write": None}),
        ("delete", P + "_shared-0_g1"),
    ]
    # Blocked with no rebuild under way (its beater died after rolling back half): made writable.
    es = FakeES(QUERIES)
    run_repair(es, a_group({}, 1000, settings={"index.blocks.write": "true"}))
    assert es.calls == [("put_settings", P + "_shared-0", {"index.blocks.write": None})]
