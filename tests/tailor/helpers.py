"""Small helpers shared by the tailor tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.http_client import ingest


def marker() -> str:
    return uuid.uuid4().hex[:10]


def send(beater_url: str, index: str, docs: list[dict[str, Any]]) -> None:
    resp = ingest(beater_url, index, docs)
    assert resp.status == 200, resp.body


def send_as_a_sender_would(
    beater_url: str, index: str, docs: list[dict[str, Any]], attempts: int = 20
) -> None:
    """Ingest, retrying on 503 as the contract tells senders to (at-least-once)."""
    for _ in range(attempts):
        resp = ingest(beater_url, index, docs)
        if resp.status != 503:
            assert resp.status == 200, resp.body
            return
        time.sleep(0.2)  # a sender's back-off, not a wait for some state
    raise AssertionError(f"beater still 503 after {attempts} attempts: {resp.body!r}")
