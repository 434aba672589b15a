"""The covering cache: which targets (and shared percolator indices) serve an ingested index, computed once per index."""

from __future__ import annotations

import re

from beater.matching.search import scope_filter
from beater.store.schema import (
    ACTIVE_FIELD,
    QUERY_FIELD,
    REGISTERED_FIELD,
    SID_FIELD,
    SIGNPOST_FIELD,
    SIGNPOST_GROUP_FIELD,
    TARGET_FIELD,
    shared_index,
    shared_number,
    signpost_document,
    signpost_id,
)
from beater.store.targets import TargetSet, Topology, topology_from
from common.query.targets import parse_target, percolator_suffix

P = "estrom-queries-"


def where(*texts: str, group: int = 0) -> dict[str, frozenset[int]]:
    return {parse_target(t).canonical: frozenset({group}) for t in texts}


def targets_for(ts: TargetSet, index: str) -> tuple[str, ...]:
    return ts.covering(index).targets


def test_a_new_daily_index_is_covered_by_name_and_cached_until_the_targets_change() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]  # the engine is only used by refresh()
    ts.replace(where("logstash-*", "logs-*,-logs-debug-*"), Topology())
    assert set(targets_for(ts, "logstash-2026.12.02")) == {"logstash-2026.12.02", "logstash-*"}
    assert targets_for(ts, "logs-debug-1") == ("logs-debug-1",)
    first = ts.covering("logs-app")
    assert ts.covering("logs-app") is first  # cached: the same object
    ts.add(parse_target("logs-a*"), 0)
    assert "logs-a*" in targets_for(ts, "logs-app")
    ts.replace(where("logstash-*", "logs-*,-logs-debug-*"), Topology())
    assert "logs-a*" not in targets_for(ts, "logs-app")


def test_one_shared_index_serves_every_target_unless_their_types_conflict() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]
    ts.replace({**where("a-*", "a-1*"), **where("a-2*", group=1)}, Topology())
    assert ts.covering("a-9").indices == (shared_index(P, 0),)
    assert ts.covering("a-1x").indices == (shared_index(P, 0),)
    assert ts.covering("a-2x").indices == (shared_index(P, 0), shared_index(P, 1))
    assert shared_number(P, shared_index(P, 1)) == 1
    assert shared_number(P, P + "logs") is None  # an older per-target index


def test_aliases_and_data_streams_lead_to_their_indices() -> None:
    aliases = {
        "logs-000001": {"aliases": {"logs-current": {"is_write_index": False}, "logs": {}}},
        "logs-000002": {"aliases": {"logs-current": {"is_write_index": True}}},
        "solo": {"aliases": {}},
        P + "_shared-0": {"aliases": {P + "logs": {}}},  # estrom's own: left out
    }
    streams = {
        "data_streams": [
            {"name": "logs-nginx-default", "indices": [{"index_name": ".ds-a-1"}, {"index_name": ".ds-a-2"}]}
        ]
    }
    topology = topology_from(aliases, streams, skip=P)
    assert topology.names_of("logs-000002") == {"logs-000002", "logs-current"}
    # Ingested through an alias or a data stream: its write index and that index's names too.
    assert topology.names_of("logs-current") == {"logs-current", "logs-000002"}
    assert topology.names_of("logs") == {"logs", "logs-000001", "logs-current"}
    assert topology.names_of("logs-nginx-default") == {"logs-nginx-default", ".ds-a-2"}
    assert topology.names_of(".ds-a-1") == {".ds-a-1", "logs-nginx-default"}
    assert topology.names_of(P + "_shared-0") == {P + "_shared-0"}
    # _index of live hits: the concrete index a write through the name lands in.
    assert topology.concrete("logs-current") == "logs-000002"
    assert topology.concrete("logs-nginx-default") == ".ds-a-2"
    assert topology.concrete("solo") == "solo"

    ts = TargetSet(None, P)  # type: ignore[arg-type]
    ts.replace(where("logs-cur*", "logs-nginx-*"), topology)
    assert "logs-cur*" in targets_for(ts, "logs-000002")
    assert "logs-current" in targets_for(ts, "logs-000002")  # a query on the alias itself
    assert "logs-cur*" not in targets_for(ts, "solo")
    assert "logs-nginx-*" in targets_for(ts, ".ds-a-1")
    assert ts.covering("logs-nginx-default").concrete == ".ds-a-2"


def test_an_alias_change_drops_the_cache() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]
    ts.replace(where("a-*"), Topology())
    assert "a-*" not in targets_for(ts, "x")
    assert ts.replace(where("a-*"), topology_from({"x": {"aliases": {"a-1": {}}}}, {}))
    assert "a-*" in targets_for(ts, "x")
    assert not ts.replace(where("a-*"), topology_from({"x": {"aliases": {"a-1": {}}}}, {}))


def test_single_names_need_no_registration_here() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]
    assert targets_for(ts, "events") == ("events",)
    ts.add(parse_target("events"), 0)
    assert ts.knows("events")
    assert not ts.knows("a-*")
    assert len(ts) == 0  # the read_targets metric counts targets other than single names


def test_a_target_another_beater_registered_is_admitted_when_it_covers_and_learned() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]
    ts.replace(where("a-*"), Topology())
    assert "b-*" not in targets_for(ts, "b-1")
    assert not ts.admits("b-*", "c-1", shared_index(P, 0))  # does not cover c-1 (learned all the same)
    assert ts.admits("b-*", "b-1", shared_index(P, 0))
    assert "b-*" in targets_for(ts, "b-1")  # from the next batch on, by the filter
    assert not ts.admits("not a target", "b-1", shared_index(P, 0))


def test_the_scope_filter_takes_the_covering_targets_and_the_recent_registrations() -> None:
    assert scope_filter(("a", "b-*"), None) == {"terms": {"estrom_target": ["a", "b-*"]}}
    recent = scope_filter(("a",), 1000)
    assert recent["bool"]["minimum_should_match"] == 1
    assert {"range": {"estrom_registered": {"gte": 1000}}} in recent["bool"]["should"]
    # Recent queries of targets this beater knows need no second look: left out.
    narrowed = scope_filter(("a",), 1000, ("a", "c-*"))["bool"]["should"][1]["bool"]
    assert narrowed["must_not"] == [{"terms": {"estrom_target": ["a", "c-*"]}}]
    ts = TargetSet(None, P)  # type: ignore[arg-type]
    ts.replace(where("c-*", "a"), Topology())
    assert ts.covering("x").known == ("a", "c-*")
    ts.add(parse_target("d-*"), 0)
    assert ts.covering("x").known == ("a", "c-*", "d-*")


def test_a_signpost_of_a_covering_target_adds_its_shared_index_from_then_on() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]
    ts.replace(where("logs-*"), Topology())
    assert ts.covering("logs-app").indices == (shared_index(P, 0),)
    assert ts.signposted("other-*", 2, "logs-app") is None  # covers nothing here: not learned
    assert not ts.knows("other-*")
    assert ts.signposted("logs-*", 2, "logs-app") == shared_index(P, 2)
    assert ts.covering("logs-app").indices == (shared_index(P, 0), shared_index(P, 2))
    assert ts.signposted("logs-app", 1, "logs-app") == shared_index(P, 1)  # a single name: itself
    assert ts.covering("logs-app").indices == tuple(shared_index(P, n) for n in (0, 1, 2))


def test_a_signpost_is_recent_matches_everything_and_is_never_a_query_of_its_target() -> None:
    key = percolator_suffix(parse_target("logs-*"))
    doc = signpost_document("logs-*", 3, key, 1_000)
    assert doc[QUERY_FIELD] == {"match_all": {}}
    assert TARGET_FIELD not in doc  # no target alias counts it, no describe_query finds it
    assert doc[SIGNPOST_FIELD] == "logs-*"
    assert doc[SIGNPOST_GROUP_FIELD] == 3
    assert doc[REGISTERED_FIELD] == 1_000
    assert doc[ACTIVE_FIELD] is True
    assert doc[SID_FIELD] == signpost_id(3, key)
    assert re.fullmatch("[0-9a-f]{16}", signpost_id(3, "abcde")) is None  # never taken for a sid
