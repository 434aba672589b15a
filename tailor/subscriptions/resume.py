"""Hits numbered in their subscription's epoch, and where an SSE client picks up again.

Every hit gets a sequence number within the subscription's *epoch* (a random
token per subscribe); the last ``history`` hits are kept so that SSE clients
resume with Last-Event-ID (``<epoch>:<seq>``) with no gap and no duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from common.hits import Hit


class SequencedHit(NamedTuple):
    """A live hit and its sequence number in its subscription's epoch (the SSE event id)."""

    seq: int
    hit: Hit


@dataclass
class Resume:
    """Where an SSE client picks up: hits to replay, and a gap notice if some are lost."""

    replay: list[SequencedHit]
    gap: dict[str, Any] | None = None


def plan_resume(last_event_id: str, epoch: str, next_seq: int, history: Sequence[SequencedHit]) -> Resume:
    """What a client that saw ``last_event_id`` has missed, given the subscription's state.

    Pure, so every case is unit tested: same epoch and covered by history →
    replay exactly the rest; same epoch but history too short → gap with the
    count missed, then all history; unknown epoch or id → gap, missed unknown.
    """
    given_epoch, _, raw_seq = last_event_id.partition(":")
    try:
        seq = int(raw_seq)
    except ValueError:
        seq = -1
    if given_epoch != epoch or not 0 <= seq < next_seq:
        return Resume(
            [],
            {
                "last_event_id": last_event_id,
                "missed": None,
                "reason": "the tailor has no history for this event id (restarted, resubscribed, "
                "or another tailor); hits since then may be missing",
            },
        )
    first_kept = history[0][0] if history else next_seq
    if seq + 1 >= first_kept:
        return Resume([e for e in history if e[0] > seq])
    missed = first_kept - (seq + 1)
    return Resume(
        list(history),
        {
            "last_event_id": last_event_id,
            "missed": missed,
            "reason": f"{missed} hits fell out of the tailor's history before the reconnect",
        },
    )
