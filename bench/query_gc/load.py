"""The ingest load: closed-loop senders on threads, one run of them per phase."""

from __future__ import annotations

from collections.abc import Sequence

from devstack.sender import Attempt, Retry, Sender


class Load:
    """``senders`` closed-loop senders POST the bodies round-robin to one index, one load per phase.

    Refused requests (429/503) are sent again after ``Retry-After``, a lost
    connection after a second; what every phase's senders saw stays readable.
    """

    def __init__(self, beater_url: str, bodies: list[bytes], docs_per_body: int, senders: int) -> None:
        self.beater_url, self.bodies, self.docs_per_body, self.senders = (
            beater_url,
            bodies,
            docs_per_body,
            senders,
        )
        self.runs: list[Sender] = []

    def _body(self, numbers: Sequence[int], _sent_at: float) -> bytes:
        return self.bodies[(numbers[0] // self.docs_per_body) % len(self.bodies)]

    def start(self, index: str) -> None:
        sender = Sender(
            self.beater_url,
            index,
            self._body,
            docs_per_batch=self.docs_per_body,
            timeout=300,
            retry=Retry(first=1.0, most=1.0),
            first_number=self.runs[-1].next_number if self.runs else 0,
        )
        self.runs.append(sender.start(self.senders))

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight."""
        if self.runs:
            self.runs[-1].stop(300)

    @property
    def requests(self) -> int:
        """Requests answered 200 in the current phase."""
        return self.runs[-1].stats.requests if self.runs else 0

    def between(self, start: float, end: float) -> tuple[list[Attempt], int]:
        """Requests answered in [start, end), and how many answers were 429/503 then."""
        done: list[Attempt] = []
        refused = 0
        for sender in self.runs:
            ok, no = sender.stats.between(start, end)
            done += ok
            refused += no
        return done, refused

    @property
    def refused(self) -> list[str]:
        """Every 429/503 answer of the run (each request was sent again)."""
        return [o for sender in self.runs for o in sender.stats.retries.elements() if o in ("429", "503")]

    @property
    def errors(self) -> list[str]:
        return [e for sender in self.runs for e in sender.stats.errors]
