"""The benchmarks' own checks: every sid's expected hit count exact, the figures and verdicts as printed.

Here, not in tests/: the product's suite never imports the benchmarks; pytest collects
this folder too (pyproject.toml's testpaths), so the README's test command runs these.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.compare.report import format_fanout, goals
from bench.compare.runs import Run
from bench.measure import pct
from bench.receivers import HitLog
from bench.router_tier.config import PROXY_ID, proxy_node, router_node
from bench.workload import QuerySet, Stream, base_docs
from common.query.identity import canonicalize, normalize_query, sid_for


def test_query_sids_are_distinct_and_those_the_beater_computes() -> None:
    qs = QuerySet.make("logs", 40)
    assert len(set(qs.sids)) == 40
    assert qs.sids[7] == sid_for("logs", canonicalize(normalize_query(qs.queries[7])))


def test_a_known_fraction_of_documents_matches_one_query_each() -> None:
    stream = Stream(base_docs(30), ["q00000", "q00001", "q00002"], every=10, size=20)
    docs = [json.loads(d) for k in range(3) for d in stream.docs(k, 1.5)]
    slots = Counter(d["slot"] for d in docs)
    assert slots == Counter({"none": 54, "q00000": 2, "q00001": 2, "q00002": 2})
    assert stream.expected([0, 1, 2]) == Counter({"q00000": 2, "q00001": 2, "q00002": 2})
    assert stream.expected([1]) == Counter({"q00002": 1, "q00000": 1})
    assert all(d["sent_at"] == 1.5 for d in docs)


def test_bodies_are_json_arrays_and_percolate_requests_carry_the_batch() -> None:
    stream = Stream(base_docs(5), ["q00000"], every=2, size=4)
    assert len(json.loads(stream.body(3, 0.0))) == 4
    request = json.loads(stream.percolate_body(3))
    percolate = request["query"]["bool"]["filter"][0]["percolate"]
    assert [d["seq"] for d in percolate["documents"]] == [2, 3, 4, 0]


def test_hit_log_check_counts_missing_and_duplicate_hits() -> None:
    log = HitLog()
    log.record("a", ({"_source": {"sent_at": 0.0}},) * 3)
    log.record("b", ({"_source": {"sent_at": 0.0}},))
    check = log.check(Counter({"a": 2, "b": 2, "c": 1}), ["a", "b", "c"])
    assert check == {"sids_ok": 0, "sids_short": 2, "sids_over": 1, "missing": 2, "extra": 1}


def test_percentiles_are_nearest_rank_in_ms() -> None:
    assert pct([], 50) is None
    assert pct([0.001 * i for i in range(1, 101)], 99) == pytest.approx(99.0)


def test_goals_read_the_runs_and_the_fanout_rows() -> None:
    runs = [
        Run("e2e-max", 1000, docs_per_s=900.0, ceiling=1000.0),
        Run("e2e-half", 1000, docs_per_s=450.0, latency_ms={"p99": 60.0}),
        Run("e2e-max", 100, docs_per_s=1000.0),
        Run("scaling", 10000, docs_per_s=950.0, ceiling=1000.0),
    ]
    row = {
        "clients": 1000,
        "hits_per_s_sent": 100.0,
        "hits_per_s_delivered": 100_000.0,
        "complete": True,
        "tailor_cpu_s_per_hit": 0.00001,
        "tailor_rss_kib": 90_000,
        "rss_per_idle_client_kib": 30.0,
    }
    met = [g["met"] for g in goals(runs, {"rows": [row]}, 1000)]
    assert met == [True, False, True, True]
    assert [g["met"] for g in goals([], None, 1000)] == [None, None, None, None]
    assert "1000" in format_fanout({"rows": [row]})


def test_waiting_for_hits_is_per_sid_so_duplicates_do_not_count_for_others() -> None:
    log = HitLog()
    hit = ({"_source": {"sent_at": 0.0}},)
    done = log.wait_complete(Counter({"a": 1, "b": 1}), timeout=60)
    fired: list[bool] = []
    done.addCallback(fired.append)
    log.record("a", hit)
    log.record("a", hit)  # a duplicate: b still waits
    assert fired == []
    log.record("b", hit)
    assert fired == [True]
    assert log.wait_complete(Counter({"a": 2}), timeout=60).result is True


def test_router_tier_links_every_router_to_every_other_and_the_proxy_reaches_all(tmp_path: Path) -> None:
    ports, keys = [9001, 9002, 9003], ["aa" * 32, "bb" * 32, "cc" * 32]
    nodes = [router_node(i, ports, 9101 + i, keys, "dd" * 32) for i in range(3)]
    links = [link for node in nodes for link in node["workers"][0]["realms"][0]["rlinks"]]
    targets = {(link["id"], link["transport"]["endpoint"]["port"]) for link in links}
    assert len(targets) == 6
    assert ("link_0_to_1", 9002) in targets
    assert all(link["forward_local_events"] and not link["forward_remote_events"] for link in links)
    public, backend = nodes[2]["workers"][0]["transports"]
    assert public["auth"]["cryptosign"]["principals"]["rlink"]["authorized_keys"] == keys
    assert backend["endpoint"]["port"] == 9103
    assert backend["auth"]["cryptosign-proxy"]["principals"][PROXY_ID]["authorized_keys"] == ["dd" * 32]
    proxy = proxy_node(9000, [9101, 9102, 9103], tmp_path)
    assert proxy["controller"]["id"] == PROXY_ID
    assert proxy["workers"][0]["routes"]["estrom"]["load"] == ["router0", "router1", "router2"]
