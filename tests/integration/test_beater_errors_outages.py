"""The beater with its engine or router down or hung: 503 with a retry, then delivery again.

The engine is reached through a proxy that can cut or hang the connection,
and the router is one of the test's own, stopped and started again.
"""

from __future__ import annotations

import time

import pytest
from autobahn.wamp.exception import ApplicationError

from devstack.stack import Stack
from devstack.wamp_client import EventSink, WampClient
from tests.http_client import http, ingest
from tests.integration.delivery_fence import markers, watch_all
from tests.real_stack import EngineHandle, StartService
from tests.tcp_proxy import TCPProxy
from tests.waiting import wait_until


def delivered_again(beater_url: str, index: str, sink: EventSink) -> None:
    """After recovery, a new document goes all the way to the subscriber.

    Sent as a sender would, until accepted: the first attempt may still meet the
    outage's last moments (a 503 is "retry later"), however slow the machine.
    """
    wait_until(
        lambda: ingest(beater_url, index, {"kind": "x", "marker": "back"}).status == 200,
        60,
        "the beater accepting documents again",
    )
    assert "back" in markers(sink.wait_for_marker("back"))


def test_engine_down_is_503_quickly_and_recovers(
    start_beater: StartService, stack: Stack, index: str, engine: EngineHandle
) -> None:
    host, port = engine.url.split("//")[1].split(":")
    proxy = TCPProxy(host, int(port))
    # A router of its own, so every RPC reaches this beater and no other.
    own = stack.start_router(f"router-{index}")
    try:
        beater = start_beater(engine_url=proxy.url, router_url=own.service_url)
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
        # Long enough for a loaded machine's engine to answer the set-up, short enough to wait out.
        beater = start_beater(engine_url=proxy.url, ESTROM_ENGINE_TIMEOUT="5")
        sink = watch_all(wamp, index)
        proxy.hang()
        resp = ingest(beater.url, index, {"kind": "x", "marker": "wedged"}, timeout=60)
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
        beater = start_beater(router_url=own.service_url)
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
