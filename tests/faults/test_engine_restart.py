"""Elasticsearch stopped and started again under a sender that never stops.

Promise: the beater answers 503 while the engine is away, well before the
sender's timeout; it recovers by itself; every document the sender ever sent
reaches a subscriber that stayed connected (WAMP and an HTTP tail), at least
once. The duplicate count is printed.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from devstack.wamp_client import WampClient
from tests.faults.delivery import numbers, report, run_sender
from tests.real_stack import EngineHandle, RouterHandle, StartService
from tests.tailor.tail_client import Tail


def test_engine_restart_mid_stream(
    fault_engine: EngineHandle,
    fault_router: RouterHandle,
    beaters: StartService,
    tailors: StartService,
    index: str,
    workdir: Path,
) -> None:
    node = fault_engine.node
    assert node is not None
    beater = beaters(ESTROM_ENGINE_TIMEOUT="8")
    tailor = tailors(ESTROM_TAILOR_HEARTBEAT="1")
    run = uuid.uuid4().hex[:8]
    client = WampClient(fault_router.url)
    sid = client.call("com.estrom.register_query", index, f"run:{run}")
    sink = client.subscribe(f"docs-for-{sid}")
    tail = Tail(tailor.url, {"s": sid, "format": "ndjson"})
    sender = run_sender(beater.url, index, run, timeout=30.0).start()
    try:
        sender.wait(lambda s: len(s.acked) >= 5, what="5 batches acknowledged")

        stopping = time.monotonic()
        node.stop()
        sender.wait(lambda s: "503" in s.outcomes_since(stopping), 20, "a 503 once the engine stops")
        first_503 = min(
            a.ended for a in sender.stats.attempts if a.started >= stopping and a.outcome == "503"
        )
        print(f"engine stop requested → first 503 after {first_503 - stopping:.2f}s")

        node.start(log_path=workdir / "faults-engine.log")
        node.wait_ready(timeout=180)
        back = time.monotonic()
        acked = len(sender.stats.acked)
        sender.wait(lambda s: len(s.acked) >= acked + 5, 60, "the beater recovered by itself")
        first_200 = min(a.ended for a in sender.stats.attempts if a.started >= back and a.outcome == "200")
        print(f"engine ready → first 200 after {first_200 - back:.2f}s")
    finally:
        sender.stop()

    outcomes = {a.outcome for a in sender.stats.attempts}
    # The 503 came before the sender's own timeout, every time.
    assert outcomes <= {"200", "503"}, outcomes
    sent = sender.stats.sent_ids
    hits = sink.wait_for(lambda hits: sent <= set(numbers(hits)), timeout=30)
    tail.wait(lambda t: sent <= set(numbers(t.hits)), 30, "every document in the HTTP tail")
    tail.close()
    client.close()
    report("WAMP subscriber", sent, numbers(hits))
    report("NDJSON tail", sent, numbers(tail.hits))
