"""Read targets as written: patterns, lists, exclusions, their one canonical form and the bad ones.

A target names what a tail reads, indices that may not exist yet included;
the beater matches each ingested document against it, the tailor backfills
from it, and both refuse a malformed one with ``invalid_index``.
"""

from __future__ import annotations

import pytest
from autobahn.wamp.exception import ApplicationError

from devstack.wamp_client import WampClient
from tests.http_client import http, ingest
from tests.integration.read_target_checks import published
from tests.real_stack import EngineHandle, ServiceHandle
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration


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
