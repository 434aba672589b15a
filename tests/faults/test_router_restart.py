"""The router stopped and started again while a sender posts and tails are open.

Promise: ingest answers 503 while the router is away and loses nothing it
acknowledged; beater and tailor rejoin and subscribe again by themselves;
JSON tails end as valid JSON with an ``"error"``; NDJSON and SSE tails stay
open, say where hits may be missing (``{"gap": ...}`` / ``event: gap``) and
carry on. Precisely: whatever was acknowledged before the router went is in
those tails before the gap notice, whatever is acknowledged after the notice
is in them after it; only what was sent in between may be missing.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

import pytest

from tests.faults.delivery import numbers, report, run_sender
from tests.http_client import http
from tests.real_stack import RouterHandle, Stack, StartService
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until


def split_at_gap(tail: Tail) -> tuple[list[Any], list[dict[str, Any]], list[Any]]:
    """(hits before the first gap notice, the notices, hits after it)."""
    if tail.format == "ndjson":
        items = [
            ("gap", v["gap"]) if "gap" in v else ("hit", v)
            for v in tail.lines
            if "_source" in v or "gap" in v
        ]
    else:
        items = [(e["event"], e.json) for e in tail.events if e["event"] in ("hit", "gap")]
    first = next(i for i, (kind, _) in enumerate(items) if kind == "gap")
    before = [v for kind, v in items[:first] if kind == "hit"]
    gaps = [v for kind, v in items if kind == "gap"]
    after = [v for kind, v in items[first:] if kind == "hit"]
    return before, gaps, after


def has_gap(tail: Tail) -> bool:
    if tail.format == "ndjson":
        return any("gap" in v for v in tail.lines)
    return any(e["event"] == "gap" for e in tail.events)


def test_router_restart_mid_stream(
    own_router: RouterHandle, beaters: StartService, tailors: StartService, index: str
) -> None:
    router = own_router
    beater = beaters(router_url=router.service_url, ESTROM_PUBLISH_TIMEOUT="3")
    tailor = tailors(router_url=router.service_url, ESTROM_TAILOR_HEARTBEAT="1")
    run = uuid.uuid4().hex[:8]
    params = {"i": index, "q": f"run:{run}"}
    tails = {fmt: Tail(tailor.url, {**params, "format": fmt}) for fmt in ("json", "ndjson", "sse")}
    sender = run_sender(beater.url, index, run).start()
    try:
        sender.wait(lambda s: len(s.acked) >= 3, what="3 batches acknowledged")
        stopping = time.monotonic()
        router.stop()
        acked_before = sender.stats.acked_ids  # nothing is acknowledged without a router

        doc = json.loads(tails["json"].wait_end())
        assert list(doc) == ["subscription_id", "hits", "error", "reason"]
        assert doc["error"] == "router_unavailable"
        assert acked_before <= set(numbers(doc["hits"]))
        sender.wait(lambda s: "503" in s.outcomes_since(stopping), 20, "503 while the router is away")

        router.start()
        wait_until(lambda: http("GET", beater.url + "/healthz").status == 200, 30, "beater rejoined")
        for tail in (tails["ndjson"], tails["sse"]):
            tail.wait(has_gap, 30, "a gap notice")
        boundary = len(sender.stats.batches)  # batches begun after both tails said "gap"
        sender.wait(lambda s: len([b for b in s.acked if b >= boundary]) >= 3, 30, "acks after the restart")
    finally:
        sender.stop()

    assert {a.outcome for a in sender.stats.attempts} <= {"200", "503"}
    acked_after = {n for b in sender.stats.acked if b >= boundary for n in sender.stats.batches[b]}
    for fmt in ("ndjson", "sse"):
        tail = tails[fmt]
        tail.wait(lambda t: acked_after <= set(numbers(split_at_gap(t)[2])), 20, f"{fmt}: hits after the gap")
        before, gaps, after = split_at_gap(tail)
        assert acked_before <= set(numbers(before)), fmt
        assert len(gaps) == 1, gaps
        assert gaps[0]["missed"] is None
        assert "router" in gaps[0]["reason"]
        missing = sender.stats.acked_ids - set(numbers(before + after))
        print(
            f"{fmt}: gap of {gaps[0]['seconds']}s; acknowledged but missing (sent during the gap): {len(missing)}"
        )
        report(f"{fmt} tail", sender.stats.acked_ids, numbers(before + after))
        tail.close()

    # A client arriving after the restart gets what is acknowledged from then on (sent until
    # acknowledged: a busy router may outlast the 3 s publish timeout once).
    late = Tail(tailor.url, {**params, "limit": 1})
    assert run_sender(beater.url, index, run).send([10**6]) == "200"
    assert numbers(late.document()["hits"]) == [10**6]


def test_a_router_whose_port_is_taken_fails_and_says_so(stack: Stack) -> None:
    """An open port is not proof of a router: the handle waits for the router's own page, so a
    port held by another process fails the start at once (a free port is only free until bound;
    with no port given, the stack tries again on a new one)."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(RuntimeError, match="died"):
            stack.start_router(f"squatted-{uuid.uuid4().hex[:6]}", port=taken)
    assert not any(name.startswith("squatted") for name in stack.routers)
