"""Watching what a beater delivered around a refused request: a subscription to all, and a fence.

After each refused request a matching "fence" document is ingested; events on
one topic arrive in order, so once the fence is in, the test knows all that
was delivered before it. Shared by the ``test_beater_errors_*`` modules.
"""

from __future__ import annotations

from devstack.wamp_client import EventSink, WampClient
from tests.http_client import ingest


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
