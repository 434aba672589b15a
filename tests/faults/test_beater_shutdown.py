"""The beater stopped under load: SIGTERM drains it, SIGKILL is covered by the sender's retries.

Promise (SIGTERM): it stops taking connections; a request it has already
read is either finished (200, and then every match really reached the
subscriber) or refused with 503, never dropped without an answer and never
200 for something it did not publish; it leaves the router after its last
publish and exits by itself, within its grace period plus a little.
Promise (SIGKILL): nothing is promised by the dying process; a sender that
retries reaches the restarted beater and every document arrives at least once.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid

from devstack.metrics_page import metric
from devstack.processes import free_port
from devstack.wamp_client import WampClient
from tests.faults.delivery import numbers, report, run_sender
from tests.http_client import ingest
from tests.real_stack import EngineHandle, RouterHandle, StartService
from tests.tcp_proxy import TCPProxy, proxy_to
from tests.waiting import wait_until

#: How long a SIGTERMed beater may take to exit: its grace (30 s at most here), leaving the
#: router (2 s), slack.
EXIT_BOUND = 60.0


def watch(router: RouterHandle, index: str, query: str) -> tuple[WampClient, object]:
    client = WampClient(router.url)
    sid = client.call("com.estrom.register_query", index, query)
    return client, client.subscribe(f"docs-for-{sid}")


def test_sigterm_finishes_or_refuses_what_is_in_flight(
    fault_engine: EngineHandle,
    fault_router: RouterHandle,
    beaters: StartService,
    proxies: list[TCPProxy],
    index: str,
) -> None:
    # A slow engine link keeps every sender's request in flight for a while.
    slow = proxy_to(proxies, fault_engine.url)
    # The engine timeout well above the slow link's delays: a slow machine's percolation
    # must not time out, or no request would be in flight to finish. The grace longer than
    # a request's percolation and publish may take (20 s + 5 s): every request in flight
    # ends in it, answered, whatever the machine's pace.
    beater = beaters(engine_url=slow.url, ESTROM_SHUTDOWN_GRACE="30", ESTROM_ENGINE_TIMEOUT="20")
    client, sink = watch(fault_router, index, "_exists_:run")
    runs = [uuid.uuid4().hex[:8] for _ in range(3)]
    senders = [run_sender(beater.url, index, run, retry=False, batch_size=10).start() for run in runs]
    for sender in senders:
        sender.wait(lambda s: len(s.acked) >= 2, what="2 batches acknowledged")
    slow.delay(1.0)
    # Requests inside the pipeline, waiting for the engine: SIGTERM now.
    wait_until(lambda: metric(beater.url, "estrom_beater_queue_documents") > 0, what="requests in flight")
    terminated = time.monotonic()
    code = beater.process.stop(timeout=EXIT_BOUND)
    exited = time.monotonic()
    for sender in senders:
        sender.stop()
    print(f"SIGTERM → exit in {exited - terminated:.2f}s, exit code {code}")
    assert code == 0, "the beater did not exit by itself (it was SIGKILLed)"

    in_flight = [a for s in senders for a in s.stats.attempts if a.started < terminated < a.ended]
    assert in_flight, "no request was in flight at the SIGTERM"
    assert {a.outcome for a in in_flight} <= {"200", "503"}, in_flight
    for sender in senders:
        outcomes = [a.outcome for a in sender.stats.attempts]
        first_refusal = next((i for i, o in enumerate(outcomes) if o != "200"), len(outcomes))
        # Once draining, never again a 200: 503 on open connections, then refused.
        assert set(outcomes[first_refusal:]) <= {"503", "refused"}, outcomes
    print("in flight at SIGTERM:", sorted(a.outcome for a in in_flight))
    finished = [a for a in in_flight if a.outcome == "200"]
    assert finished, "no request in flight was finished during the drain"
    # Every 200 means published: its documents all reached the subscriber.
    acked = {(run, n) for run, s in zip(runs, senders, strict=True) for n in s.stats.acked_ids}
    hits = sink.wait_for(lambda hits: acked <= {(h["_source"]["run"], h["_source"]["n"]) for h in hits}, 20)
    print(f"{len(acked)} acknowledged documents, {len(hits)} hits")
    client.close()


def test_sigterm_refuses_what_cannot_finish_in_the_grace(
    fault_engine: EngineHandle,
    fault_router: RouterHandle,
    beaters: StartService,
    proxies: list[TCPProxy],
    index: str,
) -> None:
    wedged = proxy_to(proxies, fault_engine.url)
    beater = beaters(engine_url=wedged.url, ESTROM_ENGINE_TIMEOUT="60", ESTROM_SHUTDOWN_GRACE="1")
    client, sink = watch(fault_router, index, "_exists_:run")
    wedged.hang()
    answers: list[int] = []
    request = threading.Thread(
        target=lambda: answers.append(ingest(beater.url, index, [{"run": "stuck", "n": 0}]).status)
    )
    request.start()
    wait_until(lambda: metric(beater.url, "estrom_beater_queue_documents") == 1, what="the request in flight")
    code = beater.process.stop(timeout=EXIT_BOUND)
    request.join(10)
    assert answers == [503]
    assert code == 0
    assert sink.hits == []
    # The refused request's cancellation is handled, not logged as a lost failure.
    assert "Unhandled error" not in beater.process.log_path.read_text(errors="replace")
    client.close()


def test_sigkill_is_covered_by_the_senders_retries(
    fault_router: RouterHandle, beaters: StartService, index: str
) -> None:
    listen = f"tcp:{free_port()}:interface=127.0.0.1"
    beater = beaters(ESTROM_BEATER_LISTEN=listen)
    run = uuid.uuid4().hex[:8]
    client, sink = watch(fault_router, index, f"run:{run}")
    sender = run_sender(beater.url, index, run).start()
    try:
        sender.wait(lambda s: len(s.acked) >= 3, what="3 batches acknowledged")
        killed = time.monotonic()
        beater.process.stop(sig=signal.SIGKILL)
        sender.wait(lambda s: bool(set(s.outcomes_since(killed)) - {"200"}), 10, "the sender notices")
        beaters(ESTROM_BEATER_LISTEN=listen)  # same address: the sender's retries find it
        acked = len(sender.stats.acked)
        sender.wait(lambda s: len(s.acked) >= acked + 3, 30, "acknowledged by the new beater")
    finally:
        sender.stop()
    sent = sender.stats.sent_ids
    hits = sink.wait_for(lambda hits: sent <= set(numbers(hits)), 20)
    print("sender saw:", sorted({a.outcome for a in sender.stats.attempts}))
    report("SIGKILL, WAMP subscriber", sent, numbers(hits))
    client.close()
