"""A Logstash-like sender: batches with unique ids, retried until the beater says 200.

Like Logstash's ``http`` output it keeps a persistent connection, retries
429, 5xx, connection errors and timeouts with a growing back-off, and never
gives up on a batch (``retry=False`` sends each batch once instead). Every
attempt is recorded, so tests can say what the beater answered when.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

RETRIED = {429, 500, 502, 503, 504}


@dataclass
class Attempt:
    batch: int
    started: float
    ended: float
    #: "200", "503", ... or the connection error: "refused", "reset", "timeout", "closed"
    outcome: str
    #: the request was completely written before the outcome
    sent: bool


@dataclass
class Sender:
    beater_url: str
    index: str
    run: str
    batch_size: int = 20
    timeout: float = 10.0
    retry: bool = True
    backoff: tuple[float, float] = (0.05, 1.0)
    batches: list[list[int]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        url = urllib.parse.urlsplit(self.beater_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._conn: http.client.HTTPConnection | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"sender-{self.run}")

    # -- control -------------------------------------------------------

    def start(self) -> Sender:
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Send no new batch; the one under way still goes until acknowledged."""
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"sender still retrying after {timeout}s: {self.attempts[-3:]}"
        self._close()

    def wait(
        self, predicate: Callable[[Sender], bool], timeout: float = 30.0, what: str = "sender state"
    ) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"{what} not met within {timeout}s; last attempts {self.attempts[-5:]}")

    def outcomes_since(self, t: float) -> list[str]:
        with self._cond:
            return [a.outcome for a in self.attempts if a.started >= t]

    @property
    def sent_ids(self) -> set[int]:
        with self._cond:
            return {n for b in self.batches for n in b}

    @property
    def acked_ids(self) -> set[int]:
        with self._cond:
            return {n for b in self.acked for n in self.batches[b]}

    # -- sending -------------------------------------------------------

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            ids = list(range(n, n + self.batch_size))
            n += self.batch_size
            self.send(ids)

    def send(self, ids: list[int]) -> str:
        """Send one batch (retrying it unless ``retry=False``); the last outcome."""
        with self._cond:
            self.batches.append(ids)
            batch = len(self.batches) - 1
        return self._deliver(batch, ids)

    def _deliver(self, batch: int, ids: list[int]) -> str:
        body = json.dumps([{"_id": f"{self.run}-{i}", "run": self.run, "n": i} for i in ids]).encode()
        delay = self.backoff[0]
        while True:
            outcome, sent, started = self._post(body)
            with self._cond:
                self.attempts.append(Attempt(batch, started, time.monotonic(), outcome, sent))
                if outcome == "200":
                    self.acked.append(batch)
                self._cond.notify_all()
            if outcome == "200" or not self.retry:
                return outcome
            if outcome.isdigit() and int(outcome) not in RETRIED:
                raise AssertionError(f"beater answered {outcome}: a sender would drop this batch")
            time.sleep(delay)  # the sender's back-off, as Logstash's
            delay = min(delay * 2, self.backoff[1])

    def _post(self, body: bytes) -> tuple[str, bool, float]:
        started = time.monotonic()
        sent = False
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._conn.request(
                "POST",
                f"/api/v0.1/ingest/{self.index}",
                body,
                {"content-type": "application/json"},
            )
            sent = True
            resp = self._conn.getresponse()
            resp.read()
            if resp.getheader("connection", "").lower() == "close":
                self._close()
            return str(resp.status), sent, started
        except ConnectionRefusedError:
            outcome = "refused"
        except ConnectionResetError:
            outcome = "reset"
        except TimeoutError:
            outcome = "timeout"
        except (http.client.RemoteDisconnected, BrokenPipeError, http.client.BadStatusLine):
            outcome = "closed"
        except OSError as exc:
            outcome = f"oserror:{exc.__class__.__name__}"
        self._close()
        return outcome, sent, started

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()


def duplicates(ns: list[int]) -> int:
    """How many deliveries beyond the first, over all documents."""
    return len(ns) - len(set(ns))
