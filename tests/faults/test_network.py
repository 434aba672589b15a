"""Network trouble between the services, through an in-project TCP proxy.

Promise: a slow link only slows things down; a black-holed link (no answer,
no error) turns into a 503 within the configured timeout (engine timeout,
publish timeout, RPC timeout), never a request that hangs; a reset link
(TCP RST) is a 503 or a lost session that comes back by itself; after the
link is restored everything works again, and a retrying sender's documents
all arrive at least once.
"""

from __future__ import annotations

import time
import uuid

import pytest

from devstack.sender import Sender
from tests.faults.delivery import numbers, report, run_sender
from tests.faults.test_beater_shutdown import watch
from tests.faults.test_router_restart import has_gap, split_at_gap
from tests.http_client import http
from tests.real_stack import EngineHandle, RouterHandle, StartService
from tests.tailor.tail_client import Tail, docs_path
from tests.tcp_proxy import TCPProxy, proxy_to
from tests.waiting import wait_until


def ws_url(proxy: TCPProxy) -> str:
    return f"ws://127.0.0.1:{proxy.port}/ws"


def timed_send(sender: Sender, ids: list[int]) -> tuple[str, float]:
    started = time.monotonic()
    outcome = sender.send(ids)
    return outcome, time.monotonic() - started


def exercise_link(link: TCPProxy, beater_url: str, index: str, run: str, timeout_name: str) -> Sender:
    """Delay, black-hole, restore, reset one of the beater's links; return the retrying sender."""
    probe = run_sender(beater_url, index, run, retry=False, timeout=60.0)
    steady = run_sender(beater_url, index, run, timeout=60.0)
    assert steady.send([0, 1]) == "200"

    link.delay(0.2)
    outcome, took = timed_send(probe, [100])
    assert outcome == "200"
    print(f"{timeout_name}: delayed link, 200 in {took:.2f}s")

    link.blackhole()
    outcome, took = timed_send(probe, [200])
    assert outcome == "503"  # the beater's, after its timeout: well before the sender's 60 s
    print(f"{timeout_name}: black-holed link, 503 in {took:.2f}s")
    link.restore()
    assert steady.send([2, 3]) == "200"

    link.reset()
    assert steady.send([4, 5]) == "200"  # perhaps after a 503 or two: the sender retries
    print(f"{timeout_name}: reset link, steady sender saw {[a.outcome for a in steady.stats.attempts]}")
    return steady


@pytest.mark.parametrize("peer", ["engine", "router"])
def test_beater_links(
    peer: str,
    fault_engine: EngineHandle,
    fault_router: RouterHandle,
    beaters: StartService,
    proxies: list[TCPProxy],
    index: str,
) -> None:
    # The timeout of the link's peer: a delayed link on a busy machine (the engine alone may
    # take seconds there: tests/real_stack.py) must be slow, not timed out; a black-holed one
    # must time out at the beater, well before the sender's own 60 s.
    if peer == "engine":
        link = proxy_to(proxies, fault_engine.url)
        setting = "ESTROM_ENGINE_TIMEOUT=20"
        beater = beaters(engine_url=link.url, ESTROM_ENGINE_TIMEOUT="20")
    else:
        link = proxy_to(proxies, fault_router.url)
        setting = "ESTROM_PUBLISH_TIMEOUT=20"
        beater = beaters(router_url=ws_url(link), ESTROM_PUBLISH_TIMEOUT="20")
    run = uuid.uuid4().hex[:8]
    client, sink = watch(fault_router, index, f"run:{run}")
    steady = exercise_link(link, beater.url, index, run, setting)
    sent = steady.stats.sent_ids | {100}
    hits = sink.wait_for(lambda hits: sent <= set(numbers(hits)), 20)
    report(f"beater↔{peer}", sent, [n for n in numbers(hits) if n in sent])
    client.close()


def test_tailor_router_link(
    fault_router: RouterHandle,
    beaters: StartService,
    tailors: StartService,
    proxies: list[TCPProxy],
    index: str,
) -> None:
    link = proxy_to(proxies, fault_router.url)
    beater = beaters()
    # An RPC timeout (engine timeout + 5 s) longer than the session's keepalive takes to notice
    # a black hole: the 503 comes from whichever ends the call first, never a hang.
    tailor = tailors(router_url=ws_url(link), ESTROM_TAILOR_HEARTBEAT="1", ESTROM_ENGINE_TIMEOUT="20")
    run = uuid.uuid4().hex[:8]
    params = {"i": index, "q": f"run:{run}"}
    json_tail = Tail(tailor.url, params)
    ndjson_tail = Tail(tailor.url, {**params, "format": "ndjson"})
    sender = run_sender(beater.url, index, run)
    assert sender.send([0]) == "200"
    for tail in (json_tail, ndjson_tail):
        tail.wait_hits(1)

    # Reset: the session drops; JSON ends with an error, NDJSON bridges the gap.
    link.reset()
    assert json_tail.document()["error"] == "router_unavailable"
    ndjson_tail.wait(has_gap, 30, "a gap notice")
    assert sender.send([1]) == "200"
    ndjson_tail.wait(lambda t: 1 in numbers(split_at_gap(t)[2]), 20, "hits after the gap")

    # Black hole: a new tail of a query this tailor does not hold yet needs the
    # router (registration) and gets 503 when the session is found lost or at the
    # RPC timeout, whichever comes first, no hang. (A tail of a held sid needs no router call: it starts, and
    # ends with the error once the session's keepalive gives up.)
    link.blackhole()
    started = time.monotonic()
    resp = http(
        "GET", tailor.url + docs_path({"i": index, "q": f"run:{run} OR fresh:{run}", "limit": 1}), timeout=60
    )
    took = time.monotonic() - started
    assert resp.status == 503, resp.body
    assert resp.json()["error"] == "unavailable"
    print(f"tailor↔router black-holed: 503 in {took:.2f}s")
    link.restore()
    wait_until(lambda: http("GET", tailor.url + "/healthz").status == 200, 30, "tailor back")
    late = Tail(tailor.url, {**params, "limit": 1})
    assert sender.send([2]) == "200"
    assert numbers(late.document()["hits"]) == [2]
    ndjson_tail.close()
