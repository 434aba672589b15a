"""What a sender saw: every attempt at every batch, and the rates, latencies and retries they add up to."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from devstack.sender_retry import retried


@dataclass
class Attempt:
    """One POST of one batch."""

    batch: int  # index into SendStats.batches
    started: float  # time.monotonic()
    ended: float
    #: "200", "503", ... or the connection error: "refused", "reset", "timeout", "closed", "oserror:<name>"
    outcome: str
    #: the request was completely written before the outcome
    sent: bool
    accepted: int = 0  # the beater's answer, for a 200
    published: int = 0

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class SendStats:
    """What a sender saw during one load; read it under ``lock`` while the load runs."""

    batches: list[Sequence[int]] = field(default_factory=list)  # document numbers, in sending order
    attempts: list[Attempt] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)  # batches the beater took, in answer order
    dropped: list[int] = field(default_factory=list)  # batches given up on (another 4xx, attempts spent)
    errors: list[str] = field(default_factory=list)
    late: int = 0  # paced batches started more than one interval after they were due
    start: float = 0.0  # time.monotonic()
    end: float = 0.0
    lock: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def acked_numbers(self) -> list[int]:
        """The numbers of the documents the beater acknowledged, in answer order (repeats included)."""
        with self.lock:
            return [n for b in self.acked for n in self.batches[b]]

    @property
    def acked_ids(self) -> set[int]:
        return set(self.acked_numbers)

    @property
    def sent_ids(self) -> set[int]:
        with self.lock:
            return {n for b in self.batches for n in b}

    @property
    def docs(self) -> int:
        """Documents in acknowledged batches."""
        with self.lock:
            return sum(len(self.batches[b]) for b in self.acked)

    @property
    def accepted(self) -> int:
        with self.lock:
            return sum(a.accepted for a in self.attempts)

    @property
    def published(self) -> int:
        with self.lock:
            return sum(a.published for a in self.attempts)

    @property
    def requests(self) -> int:
        """Requests the beater answered 200."""
        return len(self.acked)

    @property
    def latencies(self) -> list[float]:
        """Seconds each acknowledged request took (its last attempt)."""
        with self.lock:
            return [a.seconds for a in self.attempts if a.outcome == "200"]

    @property
    def retries(self) -> Counter[str]:
        """Attempts that were to be sent again, by outcome."""
        with self.lock:
            return Counter(a.outcome for a in self.attempts if retried(a.outcome))

    @property
    def retried(self) -> int:
        return sum(self.retries.values())

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end or time.monotonic()) - self.start)

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds else 0.0

    def outcomes_since(self, t: float) -> list[str]:
        with self.lock:
            return [a.outcome for a in self.attempts if a.started >= t]

    def between(self, start: float, end: float) -> tuple[list[Attempt], int]:
        """Attempts answered 200 in ``[start, end)``, and how many were answered 429/503 then."""
        with self.lock:
            window = [a for a in self.attempts if start <= a.ended < end]
        return [a for a in window if a.outcome == "200"], sum(a.outcome in ("429", "503") for a in window)
