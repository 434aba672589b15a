"""The beater's ingest limits: the token (401), the body's size (413), the queue's bound (429).

A request over a limit publishes nothing; one that could fit later is told
when to come back, one that never will is told so.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from devstack.metrics_page import metric
from devstack.wamp_client import WampClient
from tests.http_client import ingest
from tests.integration.delivery_fence import fence, markers, watch_all
from tests.real_stack import EngineHandle, StartService
from tests.tcp_proxy import TCPProxy
from tests.waiting import wait_until


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
