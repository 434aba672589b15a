"""When a sender sends a batch again, and how long it waits first: Logstash's ``http`` output's policy.

A request answered 429 or 5xx, or lost to a refused, reset or timed-out
connection, is sent again whole after a growing back-off (``Retry-After``
when the policy honours it); any other 4xx drops the batch, as Logstash does.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Answers a sender retries (Logstash's ``retryable_codes``); any other 4xx drops the batch.
RETRIED = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Retry:
    """How a refused batch is sent again: back-off from ``first`` doubling to ``most`` seconds."""

    #: attempts per batch; None: until the beater takes it
    attempts: int | None = None
    first: float = 0.1
    most: float = 5.0
    #: wait what the beater's ``Retry-After`` says instead, when it says
    retry_after: bool = True


#: A sender's own policy: until the beater takes the batch, honouring ``Retry-After``.
DEFAULT_RETRY = Retry()
#: One attempt per batch (a probe, not a sender).
ONCE = Retry(attempts=1)


def retried(outcome: str) -> bool:
    """Whether a sender sends a batch again after this outcome (a status, or a connection error)."""
    return outcome != "200" and not (outcome.isdigit() and int(outcome) not in RETRIED)
