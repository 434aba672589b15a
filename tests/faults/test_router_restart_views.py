"""The router stopped and started again under tails with a delay (a shared view).

Promise, as for any tail: JSON tails end as valid JSON with ``"error"``,
holding every hit received before the loss; NDJSON and SSE tails carry those
hits before one gap notice, then carry on. A view releases what it holds when
the router goes, in order; its SSE ids are its own, in a new epoch after the gap.
"""

from __future__ import annotations

import json

from tests.faults.test_router_restart import has_gap, split_at_gap
from tests.http_client import http
from tests.real_stack import RouterHandle, StartService
from tests.tailor.helpers import send, send_as_a_sender_would
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until


def test_delayed_tails_across_a_router_restart(
    own_router: RouterHandle, beaters: StartService, tailors: StartService, index: str
) -> None:
    beater = beaters(router_url=own_router.service_url, ESTROM_PUBLISH_TIMEOUT="3")
    tailor = tailors(router_url=own_router.service_url)
    # Held far longer than the test takes to stop the router: what the view holds then is released.
    tails = {
        fmt: Tail(tailor.url, {"i": index, "q": "tag:restart", "delay": "10s", "format": fmt})
        for fmt in ("json", "ndjson", "sse")
    }
    before = [{"tag": "restart", "n": n, "@timestamp": f"2024-01-01T00:00:0{n}Z"} for n in (2, 1)]
    send(beater.url, index, before)  # acknowledged: the tailor has them, held or released
    own_router.stop()

    doc = json.loads(tails["json"].wait_end(30))
    assert [h["_source"]["n"] for h in doc["hits"]] == [1, 2]
    assert doc["error"] == "router_unavailable"

    own_router.start()
    wait_until(lambda: http("GET", beater.url + "/healthz").status == 200, 30, "beater rejoined")
    for tail in (tails["ndjson"], tails["sse"]):
        tail.wait(has_gap, 30, "a gap notice")
    send_as_a_sender_would(
        beater.url, index, [{"tag": "restart", "n": 3, "@timestamp": "2024-01-01T00:00:03Z"}]
    )
    try:
        for fmt in ("ndjson", "sse"):
            tails[fmt].wait(lambda t: len(split_at_gap(t)[2]) >= 1, 40, f"{fmt}: the hit after the gap")
            held, gaps, after = split_at_gap(tails[fmt])
            assert [h["_source"]["n"] for h in held] == [1, 2], fmt
            assert len(gaps) == 1, gaps
            assert [h["_source"]["n"] for h in after] == [3], fmt
            assert not any("_late" in h for h in [*held, *after])
    finally:
        for tail in tails.values():
            tail.close()
    ids = [e["id"] for e in tails["sse"].events if e["event"] == "hit"]
    gap = next(e.json for e in tails["sse"].events if e["event"] == "gap")
    assert gap["last_event_id"] == ids[1]  # the view's own id, the last before the loss
    assert ids[2].split(":")[0] != ids[1].split(":")[0]  # a new epoch after the gap
