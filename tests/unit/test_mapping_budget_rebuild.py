"""Rebuilding a shared percolator index at its field limit, and the names its generations take (pure).

A rebuild copies the stored queries into a new generation mapping only the
fields they name, then moves the index's aliases to it in one change; the
engine here is a fake that records every write.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import ensureDeferred

from beater.store.events import StoreEvents
from beater.store.mappings import PercolatorIndices
from beater.store.repair import Group, IndexRepair
from beater.store.schema import (
    TEXT_WITH_KEYWORD,
    count_fields,
    generation,
    generation_index,
    percolator_index_body,
    shared_index,
    shared_number,
)
from beater.store.shared_indices import current_indices

P = "estrom-queries-"


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
