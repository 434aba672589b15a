"""Small helpers shared by the tailor tests."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.http_client import http, ingest


def metrics(base_url: str) -> dict[str, float]:
    """``/metrics`` as ``{"name{labels}": value}``."""
    resp = http("GET", base_url + "/metrics")
    assert resp.status == 200, resp.body
    out: dict[str, float] = {}
    for line in resp.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def metric(base_url: str, name: str) -> float:
    values = metrics(base_url)
    return sum(v for k, v in values.items() if re.fullmatch(rf"{re.escape(name)}(\{{.*\}})?", k))


def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy, failing after ``timeout``.

    For state only visible by asking (metrics, the router's meta API), never
    for hits: those are waited on as events.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s; last value {last!r}")


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
