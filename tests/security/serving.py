"""Proof that a stack still works: healthz on both services and one hit end to end."""

from __future__ import annotations

import uuid
from typing import Any

from tests.http_client import http
from tests.tailor.helpers import send
from tests.tailor.tail_client import Tail


def assert_still_serving(beater_url: str, tailor_url: str) -> None:
    """Both answer /healthz 200, and a document ingested now reaches a tail of it."""
    for url in (beater_url, tailor_url):
        resp = http("GET", url + "/healthz")
        assert resp.status == 200, (url, resp.body)
    index = f"alive-{uuid.uuid4().hex[:10]}"
    marker = uuid.uuid4().hex
    tail = Tail(tailor_url, {"i": index, "q": f"marker:{marker}", "limit": 1, "timeout": 60})
    assert tail.status == 200, tail.body
    doc: dict[str, Any] = {"marker": marker, "message": "still here"}
    send(beater_url, index, [doc])
    assert tail.wait_hits(1)[0]["_source"] == doc
    tail.close()
