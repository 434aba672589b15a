"""What a fault test sends and what reached a subscriber: the run's sender, document numbers, the report line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from devstack.sender import ONCE, Retry, Sender

#: A sender that never gives up, quick to retry (the beater's Retry-After would slow the tests down).
PERSISTENT = Retry(first=0.05, most=1.0, retry_after=False)


def run_sender(
    beater_url: str, index: str, run: str, *, batch_size: int = 20, timeout: float = 10.0, retry: bool = True
) -> Sender:
    """The fault tests' sender: documents ``{"_id": "<run>-<n>", "run": run, "n": n}``, ``batch_size`` a
    request, retried until acknowledged (``retry=False``: each batch once). A retrying one fails the test
    if the beater gives it cause to drop a batch (a 4xx other than 429)."""

    def body(numbers: Sequence[int], _sent_at: float) -> bytes:
        return json.dumps([{"_id": f"{run}-{i}", "run": run, "n": i} for i in numbers]).encode()

    return Sender(
        beater_url,
        index,
        body,
        docs_per_batch=batch_size,
        timeout=timeout,
        retry=PERSISTENT if retry else ONCE,
        strict=retry,
    )


def numbers(hits: Iterable[Any]) -> list[int]:
    """The ``n`` of every hit, repeats included (a sender's document numbers)."""
    return [int(h["_source"]["n"]) for h in hits]


def report(what: str, sent: set[int], received: list[int]) -> int:
    """Print how many arrived and how often (a figure for the log, not an assertion); return duplicates."""
    dups = len(received) - len(set(received))
    print(f"{what}: {len(sent)} documents sent, {len(set(received))} received, {dups} duplicates")
    return dups
