"""A shipper that retries per-item 429s, as Filebeat and Logstash do: nothing lost, duplicates counted.

The engine answers 429 for every item of an index under a
``read_only_allow_delete`` block (what it does on its own at the disk
flood-stage watermark). The shipper resends only those items, with a
backoff, until the engine takes them; the block is lifted after its first
attempt. Every document ends up stored once and reaches its subscriber at
least once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from devstack.wamp_client import WampClient
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle, ServiceHandle

pytestmark = pytest.mark.integration


def ship(beater_url: str, docs: list[tuple[str, dict[str, Any]]], on_attempt: Any) -> dict[str, int]:
    """Send ``(index, doc)`` pairs; resend the items answered 429 until none is. Returns counts."""
    pending = list(docs)
    stats = Counter()
    attempt = 0
    while pending:
        attempt += 1
        body = "".join(
            json.dumps({"create": {"_index": i}}) + "\n" + json.dumps(d) + "\n" for i, d in pending
        )
        resp = http("POST", beater_url + "/_bulk", body, {"content-type": "application/x-ndjson"})
        assert resp.status == 200, resp.body
        items = resp.json()["items"]
        assert len(items) == len(pending)
        retry = []
        for (index, doc), item in zip(pending, items, strict=True):
            status = item["create"]["status"]
            stats[status] += 1
            if status == 429:
                retry.append((index, doc))
            else:
                assert status == 201, item
        pending = retry
        on_attempt(attempt)
        if pending:
            time.sleep(min(0.1 * 2**attempt, 2.0))  # the shipper's backoff, not a wait for the test
        assert attempt < 20, "the engine never took the retried items"
    stats["attempts"] = attempt
    return dict(stats)


def test_per_item_429s_retried_nothing_lost(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    open_index, blocked = index + "-open", index + "-blocked"
    sinks = {}
    for name in (open_index, blocked):
        engine_request(engine.url, "PUT", f"/{name}", {})
        sid = wamp.call("com.estrom.register_query", name, "_exists_:marker")
        sinks[name] = wamp.subscribe(f"docs-for-{sid}")
    engine_request(engine.url, "PUT", f"/{blocked}/_settings", {"index.blocks.read_only_allow_delete": True})

    def lift(attempt: int) -> None:
        if attempt == 1:
            engine_request(
                engine.url, "PUT", f"/{blocked}/_settings", {"index.blocks.read_only_allow_delete": None}
            )

    docs = [(open_index if n % 2 else blocked, {"marker": f"m{n}"}) for n in range(40)]
    stats = ship(beater.url, docs, lift)
    assert stats[429] == 20  # every item of the blocked index, once
    assert stats[201] == 40
    assert stats["attempts"] == 2

    for name in (open_index, blocked):
        engine_request(engine.url, "POST", f"/{name}/_refresh")
        assert engine_request(engine.url, "GET", f"/{name}/_count")["count"] == 20  # stored once each
    received: Counter[str] = Counter()
    for name, sink in sinks.items():
        want = {d["marker"] for i, d in docs if i == name}
        hits = sink.wait_for(lambda hits, want=want: want <= {h["_source"]["marker"] for h in hits})
        received.update(h["_source"]["marker"] for h in hits)
        assert all(h["_index"] == name for h in hits)
    duplicates = sum(received.values()) - len(received)
    print(f"retrying shipper: 40 documents, {stats[429]} per-item 429s retried, {duplicates} duplicates")
    assert set(received) == {d["marker"] for _, d in docs}
    assert duplicates == 0  # a 429 item was not stored, so its resend is its first delivery
