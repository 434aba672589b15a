"""What reached a subscriber: document numbers out of hits, and the report line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def numbers(hits: Iterable[Any]) -> list[int]:
    """The ``n`` of every hit, repeats included (a sender's document numbers)."""
    return [int(h["_source"]["n"]) for h in hits]


def report(what: str, sent: set[int], received: list[int]) -> int:
    """Print how many arrived and how often (a figure for the log, not an assertion); return duplicates."""
    dups = len(received) - len(set(received))
    print(f"{what}: {len(sent)} documents sent, {len(set(received))} received, {dups} duplicates")
    return dups
