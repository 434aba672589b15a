"""Register → ingest → receive, against the real engine, router and beater."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from devstack.wamp_client import WampClient
from tests.http_client import engine_request, http, ingest
from tests.real_stack import EngineHandle, ServiceHandle, StartService


def register(wamp: WampClient, index: str, query: object) -> str:
    sid = wamp.call("com.estrom.register_query", index, query)
    assert isinstance(sid, str)
    assert len(sid) == 16
    assert all(c in "0123456789abcdef" for c in sid)
    return sid


def test_subscriber_receives_exactly_the_matching_documents(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sid = register(wamp, index, "level:error AND service:api")
    sink = wamp.subscribe(f"docs-for-{sid}")
    docs = [
        {"level": "error", "service": "api", "n": 1},
        {"level": "info", "service": "api", "n": 2},
        {"level": "error", "service": "web", "n": 3},
        {"_id": "doc-4", "level": "error", "service": "api", "n": 4},
        {"level": "error", "service": "api", "n": 5, "marker": "end"},
    ]
    resp = ingest(beater.url, index, docs)
    assert resp.status == 200, resp.body
    assert resp.json() == {"accepted": 5, "published": 3, "rejected": []}

    hits = sink.wait_for_marker("end")
    assert hits == [
        {"_index": index, "_source": {"level": "error", "service": "api", "n": 1}},
        {"_index": index, "_id": "doc-4", "_source": {"level": "error", "service": "api", "n": 4}},
        {"_index": index, "_source": {"level": "error", "service": "api", "n": 5, "marker": "end"}},
    ]


def test_identical_queries_share_one_sid(wamp: WampClient, index: str) -> None:
    first = register(wamp, index, {"bool": {"must": [{"match": {"a": "x"}}, {"match": {"b": "y"}}]}})
    again = register(
        wamp, index, {"query": {"bool": {"must": [{"match": {"b": "y"}}, {"match": {"a": "x"}}]}}}
    )
    spaced = register(wamp, index, "  level:error    AND   service:api ")
    plain = register(wamp, index, "level:error AND service:api")
    assert first == again
    assert spaced == plain
    assert first != plain
    assert register(wamp, index + "-other", "level:error AND service:api") != plain


def test_describe_query_returns_what_was_registered(wamp: WampClient, index: str) -> None:
    dsl = {"range": {"status": {"gte": 500}}}
    sid = register(wamp, index, {"query": dsl})
    assert wamp.call("com.estrom.describe_query", sid) == {"sid": sid, "index": index, "query": dsl}
    text_sid = register(wamp, index, "message:timeout")
    assert wamp.call("com.estrom.describe_query", text_sid) == {
        "sid": text_sid,
        "index": index,
        "query": "message:timeout",
    }


def test_one_document_matching_two_queries_reaches_each_topic_once(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sid_a = register(wamp, index, "service:api")
    sid_b = register(wamp, index, {"match": {"level": "error"}})
    sink_a = wamp.subscribe(f"docs-for-{sid_a}")
    sink_b = wamp.subscribe(f"docs-for-{sid_b}")
    resp = ingest(beater.url, index, {"service": "api", "level": "error", "marker": "both"})
    assert resp.json() == {"accepted": 1, "published": 2, "rejected": []}
    # A second document that matches both, as a fence: once it arrived, any
    # duplicate of the first would have arrived before it.
    ingest(beater.url, index, {"service": "api", "level": "error", "marker": "fence"})
    for sink in (sink_a, sink_b):
        hits = sink.wait_for_marker("fence")
        assert [h["_source"]["marker"] for h in hits] == ["both", "fence"]


def test_query_on_field_unmapped_at_registration_matches_later(
    beater: ServiceHandle, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    # Neither the document index nor any document with these fields exists yet.
    queries = {
        "lucene": "http.status:[500 TO 599] AND user.name:alice",
        "term": {"term": {"region.keyword": "eu-west"}},
        "default_field": "kaboom",
        "exists": "_exists_:trace_id",
    }
    sids = {name: register(wamp, index, q) for name, q in queries.items()}
    sinks = {name: wamp.subscribe(f"docs-for-{sid}") for name, sid in sids.items()}
    docs = [
        {"http": {"status": 503}, "user": {"name": "alice"}, "m": "a"},
        {"http": {"status": 404}, "user": {"name": "alice"}, "m": "b"},
        {"region": "eu-west", "m": "c"},
        {"region": "eu-west-2", "m": "d"},
        {"message": "something went kaboom", "m": "e"},
        {"trace_id": "abc", "m": "f"},
        {"m": "end", "http": {"status": 500}, "user": {"name": "alice"}, "region": "eu-west"},
        {"m": "end2", "message": "kaboom", "trace_id": "z"},
    ]
    assert ingest(beater.url, index, docs).status == 200
    expect = {
        "lucene": ["a", "end"],
        "term": ["c", "end"],
        "default_field": ["e", "end2"],
        "exists": ["f", "end2"],
    }
    for name, sink in sinks.items():
        last = expect[name][-1]
        hits = sink.wait_for(lambda hits, last=last: any(h["_source"]["m"] == last for h in hits))
        assert [h["_source"]["m"] for h in hits] == expect[name], name
    # The document index was never created: the mappings came from the queries alone.
    assert http("HEAD", f"{engine.url}/{index}").status == 404


def test_mapping_of_existing_document_index_is_used(
    beater: ServiceHandle, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    # A numeric field in the document index: ranges compare numbers, not strings.
    engine_request(
        engine.url,
        "PUT",
        f"/{index}",
        {
            "mappings": {
                "properties": {
                    "bytes": {"type": "long"},
                    "host": {"type": "keyword"},
                    "msg": {"type": "text"},
                }
            }
        },
    )
    text_sid = register(wamp, index, {"match": {"msg": "Disk FULL"}})
    text_sink = wamp.subscribe(f"docs-for-{text_sid}")
    sid = register(wamp, index, "bytes:[9 TO 100] AND host:Web-1")
    sink = wamp.subscribe(f"docs-for-{sid}")
    docs = [
        {"bytes": 10, "host": "Web-1", "marker": "num-in"},
        {"bytes": 1000, "host": "Web-1", "marker": "lexically-in-but-numerically-out"},
        {"bytes": 50, "host": "web-1", "marker": "keyword-is-case-sensitive"},
        {"bytes": 99, "host": "Web-1", "marker": "end"},
    ]
    assert ingest(beater.url, index, docs).status == 200
    hits = sink.wait_for_marker("end")
    assert [h["_source"]["marker"] for h in hits] == ["num-in", "end"]
    # A text field is analyzed: case and word order do not matter for match.
    texts = [
        {"msg": "the disk is full", "marker": "t1"},
        {"msg": "FULL DISK", "marker": "t2"},
        {"msg": "fine", "marker": "no"},
    ]
    assert ingest(beater.url, index, [*texts, {"msg": "disk", "marker": "end"}]).status == 200
    assert [h["_source"]["marker"] for h in text_sink.wait_for_marker("end")] == ["t1", "t2", "end"]


def test_register_then_ingest_at_once_is_not_lost(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    """An acknowledged registration takes part in the very next ingest."""
    for round_ in range(5):
        sid = register(wamp, index, f"round:r{round_}")
        sink = wamp.subscribe(f"docs-for-{sid}")
        resp = ingest(beater.url, index, {"round": f"r{round_}", "marker": "now"})
        assert resp.json()["published"] == 1
        sink.wait_for_marker("now")


@pytest.mark.parametrize("mode", ["auto", "documents", "msearch"])
def test_thousand_ndjson_documents_against_hundred_queries(
    start_beater: StartService, wamp: WampClient, index: str, mode: str
) -> None:
    beater = start_beater(ESTROM_PERCOLATE_MODE=mode)
    rng = random.Random(20261127)
    levels = ["debug", "info", "warn", "error"]
    services = [f"svc{i}" for i in range(10)]
    words = [f"w{i}" for i in range(30)]

    queries: list[tuple[object, object]] = []  # (query, predicate)
    for i in range(100):
        kind = i % 5
        if kind == 0:
            s = rng.choice(services)
            queries.append((f"service:{s}", lambda d, s=s: d["service"] == s))
        elif kind == 1:
            lv, s = rng.choice(levels), rng.choice(services)
            queries.append(
                (f"level:{lv} AND service:{s}", lambda d, lv=lv, s=s: d["level"] == lv and d["service"] == s)
            )
        elif kind == 2:
            lo = rng.randrange(100, 500)
            hi = lo + rng.randrange(0, 100)
            queries.append(
                (
                    {"range": {"status": {"gte": lo, "lte": hi}}},
                    lambda d, lo=lo, hi=hi: lo <= d["status"] <= hi,
                )
            )
        elif kind == 3:
            w1, w2 = rng.sample(words, 2)
            queries.append(
                (
                    f"message:({w1} OR {w2})",
                    lambda d, w1=w1, w2=w2: bool({w1, w2} & set(d["message"].split())),
                )
            )
        else:
            w = rng.choice(words)
            lv = rng.choice(levels)
            queries.append(
                (
                    {
                        "bool": {
                            "must": [{"match": {"message": w}}],
                            "must_not": [{"term": {"level.keyword": lv}}],
                        }
                    },
                    lambda d, w=w, lv=lv: w in d["message"].split() and d["level"] != lv,
                )
            )

    sinks = []
    seen_sids: set[str] = set()
    for query, predicate in queries:
        sid = register(wamp, index, query)
        if sid in seen_sids:  # the generator may repeat a query; it then shares a topic
            continue
        seen_sids.add(sid)
        sinks.append((wamp.subscribe(f"docs-for-{sid}"), predicate))

    docs = [
        {
            "seq": n,
            "level": rng.choice(levels),
            "service": rng.choice(services),
            "status": rng.randrange(100, 600),
            "message": " ".join(rng.sample(words, 4)),
        }
        for n in range(1000)
    ]
    resp = ingest(beater.url, index, docs, content_type="application/x-ndjson")
    assert resp.status == 200, resp.body
    body = resp.json()
    expected_total = sum(1 for d in docs for _, p in sinks if p(d))
    assert body == {"accepted": 1000, "published": expected_total, "rejected": []}

    for sink, predicate in sinks:
        expected = [d["seq"] for d in docs if predicate(d)]
        hits = sink.wait_for_count(len(expected), timeout=30)
        assert [h["_source"]["seq"] for h in hits] == expected, sink.topic


def test_restarted_beater_still_delivers_registered_queries(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    first = start_beater()
    sid = register(wamp, index, "color:green")
    sink = wamp.subscribe(f"docs-for-{sid}")
    assert ingest(first.url, index, {"color": "green", "marker": "before"}).json()["published"] == 1
    sink.wait_for_marker("before")
    first.stop()

    second = start_beater()
    assert ingest(second.url, index, {"color": "green", "marker": "after"}).json()["published"] == 1
    hits = sink.wait_for_marker("after")
    assert [h["_source"]["marker"] for h in hits] == ["before", "after"]


def test_health_and_metrics(beater: ServiceHandle, index: str) -> None:
    health = http("GET", beater.url + "/healthz")
    assert health.status == 200
    body = health.json()
    # The cluster's health, as the engine reports it (one node here: yellow
    # while a replica of an index has nowhere to go).
    cluster = body.pop("cluster")
    # With several router nodes (ESTROM_TEST_ROUTER_WORKERS), each one's state.
    assert set(body.pop("router_nodes", ["ok"])) == {"ok"}
    assert body == {"status": "ok", "engine": "ok", "router": "ok"}
    assert cluster["status"] in ("green", "yellow")
    assert cluster["nodes"] == 1
    ingest(beater.url, index, [{"a": 1}, 7])
    metrics = http("GET", beater.url + "/metrics")
    assert metrics.status == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.body.decode()
    assert 'estrom_beater_ingest_requests_total{outcome="ok"}' in text
    assert 'estrom_beater_ingest_documents_total{outcome="rejected"}' in text


def test_large_batch_is_split_and_keeps_order(beater: ServiceHandle, wamp: WampClient, index: str) -> None:
    """More documents than one batch: several percolations, one ordered stream."""
    sid = register(wamp, index, "kind:tick")
    sink = wamp.subscribe(f"docs-for-{sid}")
    docs = [{"kind": "tick", "seq": n, "pad": uuid.uuid4().hex} for n in range(1200)]
    resp = ingest(beater.url, index, json.dumps(docs))
    assert resp.json()["published"] == 1200
    hits = sink.wait_for_count(1200, timeout=30)
    assert [h["_source"]["seq"] for h in hits] == list(range(1200))
    # Batches of one sid travel as few events, not one per document.
    assert len(sink.events) < 100


@pytest.mark.parametrize("mode", ["documents", "msearch"])
def test_a_document_matching_more_queries_than_a_page_reaches_them_all(
    start_beater: StartService, wamp: WampClient, index: str, mode: str
) -> None:
    """Matches are read page by page (msearch pages are small): none is cut off."""
    beater = start_beater(ESTROM_PERCOLATE_MODE=mode)
    # Each subscribed as it is registered: a sweep deactivates a query that has had no
    # subscriber for a sweep interval, and 150 registrations may take longer than that.
    sinks = {}
    for i in range(150):
        sid = register(wamp, index, f"tag:wide OR z:q{i}")
        sinks[sid] = wamp.subscribe(f"docs-for-{sid}")
    assert len(sinks) == 150
    sids = sorted(sinks)
    first, last = sinks[sids[0]], sinks[sids[-1]]
    resp = ingest(beater.url, index, [{"tag": "wide", "n": 1}, {"tag": "narrow", "n": 2}])
    assert resp.status == 200, resp.body
    assert resp.json() == {"accepted": 2, "published": 150, "rejected": []}
    for sink in (first, last):
        assert [h["_source"] for h in sink.wait_for_count(1)] == [{"tag": "wide", "n": 1}]
