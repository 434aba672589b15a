"""Errors before the stream (400/404/503, JSON bodies) and back-end failure mid-stream."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.http_client import engine_request, http
from tests.tailor.helpers import send
from tests.tailor.tail_client import Tail, docs_path
from tests.tcp_proxy import TCPProxy
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def get(tailor_url: str, params: dict) -> tuple[int, dict]:
    resp = http("GET", tailor_url + docs_path(params))
    assert resp.headers["content-type"].startswith("application/json")
    return resp.status, resp.json()


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "missing_parameter"),
        ({"i": "logs"}, "missing_parameter"),
        ({"q": "error"}, "missing_parameter"),
        ({"i": "Logs", "q": "error"}, "invalid_index"),
        ({"i": "logs", "q": "{not json"}, "invalid_query"),
        ({"i": "logs", "q": "   "}, "invalid_query"),
        ({"i": "logs", "q": "error", "limit": "many"}, "invalid_parameter"),
        ({"i": "logs", "q": "error", "limit": "-1"}, "invalid_parameter"),
        ({"i": "logs", "q": "error", "timeout": "0"}, "invalid_parameter"),
        ({"i": "logs", "q": "error", "n": "x"}, "invalid_parameter"),
        ({"i": "logs", "q": "error", "n": "1000000"}, "invalid_parameter"),
        ({"i": "logs", "q": "error", "format": "xml"}, "invalid_parameter"),
        ({"s": "0123456789abcdef", "q": "error"}, "invalid_parameter"),
    ],
)
def test_bad_parameters_are_400(tailor, params, code):
    status, body = get(tailor.url, params)
    assert status == 400
    assert body["error"] == code
    assert body["reason"]


def test_a_query_the_engine_refuses_is_400_with_its_reason(tailor, index):
    status, body = get(tailor.url, {"i": index, "q": "level:(error"})
    assert status == 400
    assert body["error"] == "invalid_query"
    assert "parse" in body["reason"].lower() or "cannot" in body["reason"].lower(), body


def test_unknown_sid_is_404_and_a_known_one_streams(tailor, beater, index):
    status, body = get(tailor.url, {"s": "0123456789abcdef"})
    assert status == 404
    assert body["error"] == "no_such_query"

    opened = Tail(tailor.url, {"i": index, "q": "by:sid", "limit": 1})
    send(beater.url, index, [{"by": "sid", "k": 0}])
    sid = opened.document()["subscription_id"]
    opened.close()

    by_sid = Tail(tailor.url, {"s": sid, "limit": 1})
    assert by_sid.status == 200
    send(beater.url, index, [{"by": "sid", "k": 1}])
    assert by_sid.document() == {
        "subscription_id": sid,
        "hits": [{"_index": index, "_source": {"by": "sid", "k": 1}}],
    }
    by_sid.close()


def test_engine_down_is_503_and_healthz_says_so(stack, start_beater, start_tailor, engine, index):
    # A router of its own: the session's beater (engine up) must not answer for ours.
    router = stack.start_router(f"router-{uuid.uuid4().hex[:6]}")
    proxy = TCPProxy("127.0.0.1", int(engine.url.rsplit(":", 1)[1]))
    try:
        start_beater(engine_url=proxy.url, router_url=router.service_url)
        tailor = start_tailor(engine_url=proxy.url, router_url=router.service_url)
        health = http("GET", tailor.url + "/healthz")
        body = health.json()
        assert body.pop("cluster")["nodes"] == 1
        assert set(body.pop("router_nodes", ["ok"])) == {"ok"}  # several router nodes: each one's
        assert (health.status, body) == (200, {"status": "ok", "engine": "ok", "router": "ok"})
        sid = Tail(tailor.url, {"i": index, "q": "down:no", "limit": 0}).document()["subscription_id"]

        proxy.cut()
        health = http("GET", tailor.url + "/healthz")
        assert health.status == 503
        assert health.json()["engine"] == "unreachable"
        assert health.json()["router"] == "ok"
        assert "cluster" not in health.json()
        for params in ({"i": index, "q": "down:yes"}, {"s": sid}, {"s": sid, "n": 5}):
            status, body = get(tailor.url, params)
            assert status == 503, (params, body)
            assert body["error"] == "unavailable"

        proxy.restore()
        wait_until(lambda: http("GET", tailor.url + "/healthz").status == 200, what="healthy again")
    finally:
        proxy.close()
        router.stop()


def test_router_lost_mid_stream_closes_valid_json_with_an_error(stack, start_beater, start_tailor, index):
    router = stack.start_router(f"router-{uuid.uuid4().hex[:6]}")
    try:
        beater = start_beater(router_url=router.service_url)
        # NDJSON/SSE tails wait this long for the router (tests/faults covers the
        # router coming back, with a gap notice); then they end with the error.
        tailor = start_tailor(router_url=router.service_url, ESTROM_TAILOR_ROUTER_WAIT="1")
        tails = {
            fmt: Tail(tailor.url, {"i": index, "q": "cut:me", "format": fmt})
            for fmt in ("json", "ndjson", "sse")
        }
        send(beater.url, index, [{"cut": "me", "k": 1}])
        for tail in tails.values():
            tail.wait_hits(1)

        router.stop()
        raw = {fmt: tail.wait_end() for fmt, tail in tails.items()}
        for tail in tails.values():
            tail.close()

        doc = json.loads(raw["json"])
        assert list(doc) == ["subscription_id", "hits", "error", "reason"]
        assert doc["hits"] == [{"_index": index, "_source": {"cut": "me", "k": 1}}]
        assert doc["error"] == "router_unavailable"
        lines = [json.loads(line) for line in raw["ndjson"].decode().splitlines() if line.strip()]
        assert lines[-1]["error"] == "router_unavailable"
        end = [e for e in tails["sse"].events if e["event"] == "end"]
        assert end[0].json["error"] == "router_unavailable"

        status, body = get(tailor.url, {"i": index, "q": "cut:me"})
        assert status == 503
        assert body["error"] == "unavailable"
        health = http("GET", tailor.url + "/healthz")
        assert health.status == 503
        assert health.json()["router"] == "disconnected"
    finally:
        router.stop()


def test_unknown_paths_and_methods(tailor):
    assert http("GET", tailor.url + "/api/v0.1/nope").status == 404
    assert http("POST", tailor.url + "/api/v0.1/docs", b"{}").status == 405
    metrics = http("GET", tailor.url + "/metrics")
    assert metrics.status == 200
    assert "estrom_tailor_clients" in metrics.body.decode()


def test_a_sid_whose_stored_query_now_registers_as_another_is_404_not_another_stream(
    tailor, wamp, engine, index
):
    # Issue 12 bug 6. The stored query is what the beater canonicalised when
    # the sid was made; should the store's canonical form change (an upgrade,
    # a hand edit), re-registering it yields another sid. Streaming that one
    # under the asked-for sid, or the asked-for topic that nothing publishes
    # to any more, would both be silent: the tailor says so instead.
    sid = wamp.call("com.estrom.register_query", index, "stale:before")
    engine_request(
        engine.url,
        "POST",
        f"/estrom-queries-{index}/_update/{sid}?refresh=true",
        {"doc": {"estrom_meta": {"query": "stale:after"}}},
    )
    assert wamp.call("com.estrom.describe_query", sid)["query"] == "stale:after"
    moved_to = wamp.call("com.estrom.register_query", index, "stale:after")

    status, body = get(tailor.url, {"s": sid})
    assert status == 404, body
    assert body["error"] == "no_such_query"
    assert body["registered_as"] == moved_to
    assert sid in body["reason"]
    assert moved_to in body["reason"]
