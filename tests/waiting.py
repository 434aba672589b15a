"""Waiting on observable state with a bound: the only kind of waiting tests do."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll observable state (the engine, an RPC, /healthz, /metrics) until it holds; return it.

    For state only visible by asking (metrics, the router's meta API), never
    for hits: those are waited on as events.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last value {value!r}")
        time.sleep(0.05)
