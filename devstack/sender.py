"""A Logstash-like sender: JSON arrays of numbered documents POSTed to the beater, refused ones sent again.

It behaves like Logstash's ``http`` output with ``format => "json_batch"``:
one JSON array per request over persistent connections (one per worker
thread); a request answered 429 or 5xx, or lost to a refused, reset or
timed-out connection, is sent again whole after a growing back-off
(``Retry-After`` when the policy honours it); any other 4xx drops the batch,
as Logstash does. At-least-once, like any sender.

Documents are numbered: a batch holds consecutive numbers, so what every
receiver should get follows from what the beater acknowledged. The body of
a batch is made just before each attempt (``body_for(numbers, time.time())``),
so documents can carry their send time. Every attempt is recorded in
``SendStats``: the fault tests read what the beater answered when; the
benchmarks read rates, latencies and retries.

Loads run in the background until ``seconds`` pass or ``stop()``:
``start(concurrency)`` sends back to back (closed loop); ``start_paced(rate)``
keeps a schedule (batch ``k`` due at ``k * batch / rate`` seconds) whatever
the answers, counting the batches that started late.

The retry policy is ``devstack.sender_retry``, the record of attempts
``devstack.sender_stats``; their names are importable from here too.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from devstack.sender_retry import DEFAULT_RETRY, ONCE, RETRIED, Retry, retried
from devstack.sender_stats import Attempt, SendStats

__all__ = [
    "DEFAULT_RETRY",
    "ONCE",
    "RETRIED",
    "Attempt",
    "BodyFor",
    "Retry",
    "SendStats",
    "Sender",
    "retried",
]

#: ``body_for(document numbers, wall-clock send time) -> request body``
BodyFor = Callable[[Sequence[int], float], bytes]


class Sender:
    """POSTs numbered documents to ``<beater_url>/api/v0.1/ingest/<index>``, ``docs_per_batch`` a request."""

    def __init__(
        self,
        beater_url: str,
        index: str,
        body_for: BodyFor,
        *,
        docs_per_batch: int = 20,
        timeout: float = 60.0,
        retry: Retry = DEFAULT_RETRY,
        strict: bool = False,
        first_number: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``strict``: a dropped batch raises ``AssertionError`` (tests: the beater must never give a
        sender cause to drop one); otherwise it is counted in ``SendStats.dropped``."""
        url = urlsplit(beater_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.path = f"/api/v0.1/ingest/{index}"
        self.body_for = body_for
        self.docs_per_batch = docs_per_batch
        self.timeout = timeout
        self.retry = retry
        self.strict = strict
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.next_number = first_number
        self.stats = SendStats()
        self.failure: BaseException | None = None
        self._numbers = threading.Lock()
        self._stop = threading.Event()
        self._driver: threading.Thread | None = None
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []

    # -- one batch -------------------------------------------------------------

    def send(self, numbers: Sequence[int]) -> str:
        """Send the documents ``numbers`` in this thread, again as the policy says; the last outcome."""
        with self.stats.lock:
            self.stats.batches.append(numbers)
            batch = len(self.stats.batches) - 1
        return self._deliver(batch, numbers)

    def _take(self) -> list[int]:
        with self._numbers:
            first, self.next_number = self.next_number, self.next_number + self.docs_per_batch
        return list(range(first, first + self.docs_per_batch))

    def _deliver(self, batch: int, numbers: Sequence[int]) -> str:
        stats, delay, attempt = self.stats, self.retry.first, 0
        while True:
            attempt += 1
            body = self.body_for(numbers, time.time())
            started = time.monotonic()
            outcome, sent, answer, retry_after = self._post(body)
            record = Attempt(batch, started, time.monotonic(), outcome, sent)
            if answer is not None:
                record.accepted, record.published = int(answer["accepted"]), int(answer["published"])
            with stats.lock:
                stats.attempts.append(record)
                if outcome == "200":
                    stats.acked.append(batch)
                    if answer is not None and answer.get("rejected"):
                        stats.errors.append(f"rejected: {answer['rejected'][:3]}")
                stats.lock.notify_all()
            if outcome == "200":
                return outcome
            if not retried(outcome) or (self.retry.attempts is not None and attempt >= self.retry.attempts):
                give_up = "" if retried(outcome) else ": a sender would drop this batch"
                with stats.lock:
                    stats.dropped.append(batch)
                    stats.errors.append(f"batch {batch}: {outcome} after {attempt} attempt(s){give_up}")
                    stats.lock.notify_all()
                if self.strict and not retried(outcome):
                    raise AssertionError(f"beater answered {outcome}: a sender would drop this batch")
                return outcome
            wait = retry_after if self.retry.retry_after and retry_after is not None else delay
            time.sleep(wait)  # the sender's back-off before sending again, as Logstash's
            delay = min(delay * 2, self.retry.most)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            self._conns.append(conn)
        return conn

    def _drop_conn(self) -> None:
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def _post(self, body: bytes) -> tuple[str, bool, dict[str, Any] | None, float | None]:
        """One request: (outcome, completely sent, the 200 answer, Retry-After seconds)."""
        sent = False
        try:
            conn = self._conn()
            conn.request("POST", self.path, body, self.headers)
            sent = True
            resp = conn.getresponse()
            payload = resp.read()
            if resp.getheader("connection", "").lower() == "close":
                self._drop_conn()
            header = resp.getheader("retry-after")
            retry_after = float(header) if header and header.replace(".", "", 1).isdigit() else None
            answer = json.loads(payload) if resp.status == 200 else None
            return str(resp.status), sent, answer, retry_after
        except ConnectionRefusedError:
            outcome = "refused"
        except ConnectionResetError:
            outcome = "reset"
        except TimeoutError:
            outcome = "timeout"
        except (BrokenPipeError, http.client.BadStatusLine):
            outcome = "closed"
        except http.client.HTTPException as exc:
            outcome = f"http:{exc.__class__.__name__}"
        except OSError as exc:
            outcome = f"oserror:{exc.__class__.__name__}"
        self._drop_conn()
        return outcome, sent, None, None

    # -- loads in the background -------------------------------------------------

    def start(self, concurrency: int = 1, seconds: float | None = None) -> Sender:
        """Closed loop: ``concurrency`` requests back to back until ``seconds`` pass or ``stop()``.

        Starts a new ``stats``; document numbers carry on from the last load.
        """

        def worker(deadline: float | None) -> None:
            while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
                self.send(self._take())

        def load() -> None:
            deadline = None if seconds is None else time.monotonic() + seconds
            threads = [
                threading.Thread(
                    target=self._guarded, args=(worker, deadline), daemon=True, name=f"sender-{i}"
                )
                for i in range(concurrency)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        return self._begin(load)

    def start_paced(self, docs_per_s: float, seconds: float, workers: int = 8) -> Sender:
        """Open loop: batch ``k`` due ``k * docs_per_batch / docs_per_s`` seconds in, sent by ``workers``
        threads whatever the answers, for ``seconds`` or until ``stop()``."""
        interval = self.docs_per_batch / docs_per_s

        def one(due: float) -> None:
            if time.monotonic() - due > interval:
                with self.stats.lock:
                    self.stats.late += 1
            self.send(self._take())

        def load() -> None:
            t0 = time.monotonic()
            with ThreadPoolExecutor(workers, thread_name_prefix="sender") as pool:
                for k in range(int(seconds / interval) + 1):
                    due = t0 + k * interval
                    if k * interval >= seconds or self._stop.wait(max(0.0, due - time.monotonic())):
                        break
                    pool.submit(self._guarded, one, due)

        return self._begin(load)

    def _begin(self, load: Callable[[], None]) -> Sender:
        if self._driver is not None and self._driver.is_alive():
            raise RuntimeError("a load is running: stop() or join() it first")
        self._stop.clear()
        self.failure = None
        self.stats = SendStats(start=time.monotonic())

        def drive() -> None:
            try:
                load()
            finally:
                self.stats.end = time.monotonic()

        self._driver = threading.Thread(target=drive, daemon=True, name="sender-load")
        self._driver.start()
        return self

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a worker; its failure (a strict sender's dropped batch) ends the load and is re-raised
        by ``join`` and ``stop``."""
        try:
            fn(*args)
        except BaseException as exc:
            self.failure = self.failure or exc
            self._stop.set()
            with self.stats.lock:
                self.stats.lock.notify_all()

    def wait(
        self, predicate: Callable[[SendStats], bool], timeout: float = 30.0, what: str = "sender state"
    ) -> None:
        """Until ``predicate(stats)`` holds (checked at every attempt), or fail after ``timeout``."""
        stats = self.stats
        with stats.lock:
            ok = stats.lock.wait_for(lambda: self.failure is not None or predicate(stats), timeout)
        self._raise_failure()
        if not ok:
            raise AssertionError(f"{what} not met within {timeout}s; last attempts {stats.attempts[-5:]}")

    def join(self, timeout: float = 120.0) -> SendStats:
        """Wait for the load to end by itself (its ``seconds``); the batches under way are answered."""
        if self._driver is not None:
            self._driver.join(timeout)
            if self._driver.is_alive():
                raise AssertionError(f"sender still sending after {timeout}s: {self.stats.attempts[-3:]}")
        self._raise_failure()
        return self.stats

    def stop(self, timeout: float = 60.0) -> SendStats:
        """Send no new batch; those under way still go until answered as the policy says."""
        self._stop.set()
        try:
            return self.join(timeout)
        finally:
            self.close()

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._conns = []

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure
