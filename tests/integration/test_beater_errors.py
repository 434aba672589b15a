"""Every error path of the contract's ingest and RPC sections, with what was delivered.

After each refused request a matching "fence" document is ingested; events on
one topic arrive in order, so once the fence is in, the test knows that
nothing else was (or was) delivered before it.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from autobahn.wamp.exception import ApplicationError

from common.query.identity import sid_for
from devstack.metrics_page import metric
from devstack.stack import Stack
from devstack.wamp_client import EventSink, WampClient
from tests.http_client import engine_request, http, ingest
from tests.real_stack import EngineHandle, ServiceHandle, StartService
from tests.tcp_proxy import TCPProxy
from tests.waiting import wait_until


def watch_all(wamp: WampClient, index: str) -> EventSink:
    """Subscribe to a query that matches every document carrying a ``kind``."""
    sid = wamp.call("com.estrom.register_query", index, "_exists_:kind")
    return wamp.subscribe(f"docs-for-{sid}")


def fence(beater_url: str, index: str, sink: EventSink, name: str = "fence") -> list[dict]:
    resp = ingest(beater_url, index, {"kind": "fence", "marker": name})
    assert resp.status == 200, resp.body
    return sink.wait_for_marker(name)


def markers(hits: list[dict]) -> list[str]:
    return [h["_source"].get("marker") for h in hits]


def delivered_again(beater_url: str, index: str, sink: EventSink) -> None:
    """After recovery, a new document goes all the way to the subscriber."""
    resp = ingest(beater_url, index, {"kind": "x", "marker": "back"})
    assert resp.status == 200
    assert markers(sink.wait_for_marker("back")) == ["back"]


# --- 400: nothing readable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "reason_part"),
    [
        ('{"kind": "x", "marker": "broken"', "application/json", "not JSON"),
        ("", "application/json", "empty"),
        ("   \n  ", "application/x-ndjson", "empty"),
        ("42", "application/json", "JSON object or an array"),
        (b"\xff\xfe{}", "application/json", "UTF-8"),
    ],
)
def test_unreadable_body_is_400_and_publishes_nothing(
    beater: ServiceHandle,
    wamp: WampClient,
    index: str,
    body: str | bytes,
    content_type: str,
    reason_part: str,
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, body, content_type=content_type)
    assert resp.status == 400
    assert resp.headers["content-type"] == "application/json"
    payload = resp.json()
    assert payload["error"] == "unreadable_body"
    assert reason_part in payload["reason"]
    assert markers(fence(beater.url, index, sink)) == ["fence"]


# --- 415: a body that is not typed as JSON is not read ------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("kind=x&marker=form", "application/x-www-form-urlencoded"),
        ('{"kind": "x", "marker": "text"}', "text/plain"),
        ('{"kind": "x", "marker": "multipart"}', "multipart/form-data; boundary=x"),
    ],
)
def test_body_not_typed_as_json_is_415_and_publishes_nothing(
    beater: ServiceHandle, wamp: WampClient, index: str, body: str, content_type: str
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, body, content_type=content_type)
    assert resp.status == 415
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["error"] == "unsupported_media_type"
    assert "application/json" in resp.json()["reason"]
    assert markers(fence(beater.url, index, sink)) == ["fence"]


def test_body_whose_items_are_all_bad_is_400_listing_them(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, [1, "two", None, [3]])
    assert resp.status == 400
    payload = resp.json()
    assert payload["error"] == "unreadable_body"
    assert [r["position"] for r in payload["rejected"]] == [0, 1, 2, 3]
    assert markers(fence(beater.url, index, sink)) == ["fence"]


# --- 200 with rejected items: the good ones go through ------------------------------


def test_bad_line_inside_ndjson_is_rejected_and_the_rest_delivered(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sink = watch_all(wamp, index)
    body = "\n".join(
        [
            json.dumps({"kind": "x", "marker": "one"}),
            '{"kind": "x", "marker": ',  # truncated line
            "",  # blank lines are not items
            "[1, 2]",  # valid JSON, not an object
            json.dumps({"kind": "x", "marker": "two"}),
        ]
    )
    resp = ingest(beater.url, index, body, content_type="application/x-ndjson")
    assert resp.status == 200
    payload = resp.json()
    assert payload["accepted"] == 2
    assert payload["published"] == 2
    assert [r["position"] for r in payload["rejected"]] == [1, 3]
    assert "not JSON" in payload["rejected"][0]["reason"]
    assert "not a JSON object" in payload["rejected"][1]["reason"]
    assert markers(fence(beater.url, index, sink)) == ["one", "two", "fence"]


def test_non_object_array_items_are_rejected_and_the_rest_delivered(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(
        beater.url,
        index,
        [
            {"kind": "x", "marker": "a"},
            17,
            {"kind": "x", "_type": "nope", "marker": "meta"},
            {"kind": "x", "marker": "b"},
        ],
    )
    assert resp.status == 200
    payload = resp.json()
    assert payload["accepted"] == 2
    assert [r["position"] for r in payload["rejected"]] == [1, 2]
    assert "metadata field" in payload["rejected"][1]["reason"]
    assert markers(fence(beater.url, index, sink)) == ["a", "b", "fence"]


@pytest.mark.parametrize("mode", ["documents", "msearch"])
def test_document_the_engine_cannot_parse_is_rejected_alone(
    start_beater: StartService, wamp: WampClient, index: str, engine: EngineHandle, mode: str
) -> None:
    # "documents" fails the whole request for one bad document, so the beater
    # must fall back to isolating it; "msearch" fails that item alone.
    beater = start_beater(ESTROM_PERCOLATE_MODE=mode)
    # A scalar where an object is mapped: every engine refuses it. (An object
    # where a number is mapped is refused by Elasticsearch 7 only: OpenSearch's
    # ignore_malformed drops that field and keeps the document.)
    mappings = {
        "properties": {"size": {"type": "long"}, "owner": {"properties": {"name": {"type": "keyword"}}}}
    }
    engine_request(engine.url, "PUT", f"/{index}", {"mappings": mappings})
    sid = wamp.call("com.estrom.register_query", index, "size:[1 TO 10] OR kind:fence OR owner.name:x")
    sink = wamp.subscribe(f"docs-for-{sid}")
    docs = [
        {"size": 5, "marker": "ok-1"},
        {"owner": "a scalar where an object is mapped", "marker": "conflict"},
        {"size": 7, "marker": "ok-2"},
    ]
    resp = ingest(beater.url, index, docs)
    assert resp.status == 200
    payload = resp.json()
    assert payload["accepted"] == 2
    assert payload["published"] == 2
    assert [r["position"] for r in payload["rejected"]] == [1]
    assert payload["rejected"][0]["reason"].startswith("engine refused the document")
    assert markers(fence(beater.url, index, sink)) == ["ok-1", "ok-2", "fence"]


# --- index names ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["Upper", "_under", "-dash", "a*b", "has space", "a,b", "x" * 256, ".hidden"])
def test_bad_index_name_is_refused_by_http_and_rpc(beater: ServiceHandle, wamp: WampClient, bad: str) -> None:
    from urllib.parse import quote

    resp = ingest(beater.url, quote(bad, safe=""), {"kind": "x"})
    assert resp.status == 400
    assert resp.json()["error"] == "invalid_index"
    if bad in ("a*b", "a,b"):
        # Ingest names one concrete target; a read target may be a pattern or a list.
        assert len(wamp.call("com.estrom.register_query", bad, "kind:x")) == 16
        return
    with pytest.raises(ApplicationError) as err:
        wamp.call("com.estrom.register_query", bad, "kind:x")
    assert err.value.error == "com.estrom.error.invalid_index"


# --- RPC errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "reason_part"),
    [
        ("message:(unbalanced", "parse"),
        ("status:[1 TO", "parse"),
        ({"no_such_query_type": {"f": 1}}, "no_such_query_type"),
        ({"match": {"a": "x"}, "term": {"b": "y"}}, "exactly one query type"),
        ({}, "empty"),
        ("   ", "empty"),
        (42, "string or a JSON object"),
        (["list"], "string or a JSON object"),
    ],
)
def test_invalid_query_is_refused_and_not_stored(
    wamp: WampClient, index: str, query: object, reason_part: str
) -> None:
    with pytest.raises(ApplicationError) as err:
        wamp.call("com.estrom.register_query", index, query)
    assert err.value.error == "com.estrom.error.invalid_query"
    assert reason_part in str(err.value.args[0])
    if isinstance(query, str) and query.strip():
        with pytest.raises(ApplicationError) as missing:
            wamp.call("com.estrom.describe_query", sid_for(index, query))
        assert missing.value.error == "com.estrom.error.no_such_query"


@pytest.mark.parametrize("sid", ["0123456789abcdef", "not-a-sid", "", 7])
def test_describe_unknown_sid(wamp: WampClient, sid: object) -> None:
    with pytest.raises(ApplicationError) as err:
        wamp.call("com.estrom.describe_query", sid)
    assert err.value.error == "com.estrom.error.no_such_query"


# --- 401 / 413 / 429 ---------------------------------------------------------------------


def test_ingest_token(start_beater: StartService, wamp: WampClient, index: str) -> None:
    guarded = start_beater(ESTROM_INGEST_TOKEN="s3cret")
    sink = watch_all(wamp, index)
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret"}):
        resp = ingest(guarded.url, index, {"kind": "x", "marker": "nope"}, headers=headers)
        assert resp.status == 401
        assert resp.headers["www-authenticate"] == "Bearer"
        assert resp.json()["error"] == "unauthorized"
    ok = ingest(
        guarded.url, index, {"kind": "x", "marker": "yes"}, headers={"authorization": "Bearer s3cret"}
    )
    assert ok.status == 200
    assert markers(sink.wait_for_marker("yes")) == ["yes"]


def test_body_over_the_limit_is_413(start_beater: StartService, wamp: WampClient, index: str) -> None:
    small = start_beater(ESTROM_INGEST_MAX_BODY="2000")
    sink = watch_all(wamp, index)
    big = [{"kind": "x", "marker": "big", "pad": "p" * 100} for _ in range(30)]
    resp = ingest(small.url, index, big)
    assert resp.status == 413
    assert resp.json()["error"] == "body_too_large"
    assert markers(fence(small.url, index, sink)) == ["fence"]


def test_full_queue_is_429_with_retry_after(
    start_beater: StartService, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    host, port = engine.url.split("//")[1].split(":")
    proxy = TCPProxy(host, int(port))
    try:
        tiny = start_beater(engine_url=proxy.url, ESTROM_QUEUE_MAX_DOCS="10", ESTROM_ENGINE_TIMEOUT="30")
        sink = watch_all(wamp, index)
        # A wedged engine holds the first request's documents in the queue...
        proxy.hang()
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(
                ingest, tiny.url, index, [{"kind": "x", "marker": f"held{i}"} for i in range(8)]
            )
            wait_until(
                lambda: metric(tiny.url, "estrom_beater_queue_documents") == 8, what="8 documents queued"
            )
            # ...so the next one does not fit: 429, come back later.
            resp = ingest(tiny.url, index, [{"kind": "x", "marker": f"m{i}"} for i in range(3)])
            assert resp.status == 429
            assert int(resp.headers["retry-after"]) >= 1
            assert resp.json()["error"] == "queue_full"
            proxy.restore()
            assert held.result(timeout=60).status in (200, 503)
        # A request larger than the whole queue would never fit: 413, not 429 forever.
        too_big = ingest(tiny.url, index, [{"kind": "x", "marker": f"b{i}"} for i in range(11)])
        assert too_big.status == 413
        assert too_big.json()["error"] == "too_many_documents"
        hits = fence(tiny.url, index, sink)
        assert not [m for m in markers(hits) if m.startswith(("m", "b"))]
    finally:
        proxy.close()


# --- 503: engine or router down, and recovery ---------------------------------------------


def test_engine_down_is_503_quickly_and_recovers(
    start_beater: StartService, stack: Stack, index: str, engine: EngineHandle
) -> None:
    host, port = engine.url.split("//")[1].split(":")
    proxy = TCPProxy(host, int(port))
    # A router of its own, so every RPC reaches this beater and no other.
    own = stack.start_router(f"router-{index}")
    try:
        beater = start_beater(engine_url=proxy.url, router_url=own.url)
        client = WampClient(own.url)
        sink = watch_all(client, index)
        proxy.cut()
        started = time.monotonic()
        resp = ingest(beater.url, index, {"kind": "x", "marker": "lost"})
        elapsed = time.monotonic() - started
        assert resp.status == 503
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.json()["error"] == "unavailable"
        print(f"503 answered in {elapsed:.3f}s")  # a figure, not a timing assert
        health = http("GET", beater.url + "/healthz")
        assert health.status == 503
        assert health.json()["engine"] == "unreachable"
        with pytest.raises(ApplicationError) as err:
            client.call("com.estrom.register_query", index, "kind:other")
        assert err.value.error == "com.estrom.error.unavailable"
        with pytest.raises(ApplicationError) as err:
            client.call("com.estrom.describe_query", "0123456789abcdef")
        assert err.value.error == "com.estrom.error.unavailable"

        proxy.restore()
        delivered_again(beater.url, index, sink)
        client.close()
    finally:
        proxy.close()
        own.stop()


def test_hung_engine_is_503_after_the_engine_timeout(
    start_beater: StartService, wamp: WampClient, index: str, engine: EngineHandle
) -> None:
    host, port = engine.url.split("//")[1].split(":")
    proxy = TCPProxy(host, int(port))
    try:
        beater = start_beater(engine_url=proxy.url, ESTROM_ENGINE_TIMEOUT="1")
        sink = watch_all(wamp, index)
        proxy.hang()
        resp = ingest(beater.url, index, {"kind": "x", "marker": "wedged"}, timeout=20)
        assert resp.status == 503
        assert "engine" in resp.json()["reason"]
        proxy.restore()
        delivered_again(beater.url, index, sink)
    finally:
        proxy.close()


def test_router_down_is_503_and_beater_rejoins(
    start_beater: StartService, stack: Stack, engine: EngineHandle, index: str
) -> None:
    own = stack.start_router(f"router-{index}")
    try:
        beater = start_beater(router_url=own.url)
        client = WampClient(own.url)
        watch_all(client, index)
        own.stop()
        resp = ingest(beater.url, index, {"kind": "x", "marker": "lost"})
        assert resp.status == 503
        assert int(resp.headers["retry-after"]) >= 1
        health = http("GET", beater.url + "/healthz")
        assert health.status == 503
        assert health.json()["router"] == "disconnected"

        own.start()
        wait_until(lambda: http("GET", beater.url + "/healthz").status == 200, 30, "beater rejoined")
        client = WampClient(own.url)
        delivered_again(beater.url, index, watch_all(client, index))
        client.close()
    finally:
        own.stop()


# --- routing ----------------------------------------------------------------------------


def test_unknown_path_and_wrong_method(beater: ServiceHandle) -> None:
    resp = http("GET", beater.url + "/nope")
    assert resp.status == 404
    assert resp.json()["error"] == "not_found"
    resp = http("GET", beater.url + "/api/v0.1/ingest/events")
    assert resp.status == 405
    assert resp.json()["error"] == "method_not_allowed"
