"""The covering cache: which percolator indices serve an ingested index, computed once per index."""

from __future__ import annotations

from typing import Any

from beater.store.targets import TargetSet, Topology, topology_from
from common.query.targets import parse_target, percolator_suffix

P = "estrom-queries-"


def pindex(target: str) -> str:
    return P + percolator_suffix(parse_target(target))


def targets(*texts: str) -> dict[str, Any]:
    return {pindex(t): parse_target(t) for t in texts}


def test_a_new_daily_index_is_covered_by_name_and_cached_until_the_targets_change() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]  # the engine is only used by refresh()
    ts.replace(targets("logstash-*", "logs-*,-logs-debug-*"), Topology())
    assert set(ts.percolator_indices_for("logstash-2026.12.02")) == {
        P + "logstash-2026.12.02",
        pindex("logstash-*"),
    }
    assert ts.percolator_indices_for("logs-debug-1") == (P + "logs-debug-1",)
    first = ts.percolator_indices_for("logs-app")
    assert ts.percolator_indices_for("logs-app") is first  # cached: the same tuple
    ts.add(pindex("logs-a*"), parse_target("logs-a*"))
    assert pindex("logs-a*") in ts.percolator_indices_for("logs-app")
    ts.forget(pindex("logs-a*"))
    assert pindex("logs-a*") not in ts.percolator_indices_for("logs-app")


def test_aliases_and_data_streams_lead_to_their_indices() -> None:
    aliases = {
        "logs-000001": {"aliases": {"logs-current": {"is_write_index": False}, "logs": {}}},
        "logs-000002": {"aliases": {"logs-current": {"is_write_index": True}}},
        "solo": {"aliases": {}},
    }
    streams = {
        "data_streams": [
            {"name": "logs-nginx-default", "indices": [{"index_name": ".ds-a-1"}, {"index_name": ".ds-a-2"}]}
        ]
    }
    topology = topology_from(aliases, streams)
    assert topology.names_of("logs-000002") == {"logs-000002", "logs-current"}
    # Ingested through an alias or a data stream: its write index and that index's names too.
    assert topology.names_of("logs-current") == {"logs-current", "logs-000002"}
    assert topology.names_of("logs") == {"logs", "logs-000001", "logs-current"}
    assert topology.names_of("logs-nginx-default") == {"logs-nginx-default", ".ds-a-2"}
    assert topology.names_of(".ds-a-1") == {".ds-a-1", "logs-nginx-default"}

    ts = TargetSet(None, P)  # type: ignore[arg-type]
    ts.replace(targets("logs-cur*", "logs-nginx-*"), topology)
    assert pindex("logs-cur*") in ts.percolator_indices_for("logs-000002")
    assert P + "logs-current" in ts.percolator_indices_for("logs-000002")  # a query on the alias itself
    assert pindex("logs-cur*") not in ts.percolator_indices_for("solo")
    assert pindex("logs-nginx-*") in ts.percolator_indices_for(".ds-a-1")


def test_an_alias_change_drops_the_cache() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]
    ts.replace(targets("a-*"), Topology())
    assert pindex("a-*") not in ts.percolator_indices_for("x")
    assert ts.replace(targets("a-*"), topology_from({"x": {"aliases": {"a-1": {}}}}, {}))
    assert pindex("a-*") in ts.percolator_indices_for("x")
    assert not ts.replace(targets("a-*"), topology_from({"x": {"aliases": {"a-1": {}}}}, {}))


def test_single_names_need_no_registration_here() -> None:
    ts = TargetSet(None, P)  # type: ignore[arg-type]
    assert ts.percolator_indices_for("events") == (P + "events",)
    assert ts.knows(P + "events")
    assert not ts.knows(pindex("a-*"))
    ts.add(P + "events", parse_target("events"))
    assert len(ts) == 0
