"""A steady, Logstash-like sender for the tail benchmarks: JSON arrays at a fixed document rate.

Like Logstash's ``http`` output with ``format => "json_batch"``, it POSTs
JSON arrays to the beater and retries the whole request on 429, 5xx and
connection errors, with backoff (``Retry-After`` when given). Unlike a
closed-loop load generator it keeps a schedule: batch ``k`` is due at
``k * batch / rate`` seconds, sent by a few worker threads, so a slow answer
delays neither the next batch nor the rate (up to the workers' capacity;
late batches are counted). Every document carries a unique ``swarm_seq``
(bench/tail_swarm.py): the numbers of the accepted documents are what every
tail should receive.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.tail_swarm import SEQ_FIELD

Doc = dict[str, Any]
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_ATTEMPTS = 12


@dataclass
class SendStats:
    """What the beater accepted; touched under ``lock``."""

    sent_seqs: list[int] = field(default_factory=list)  # accepted documents' numbers
    requests: int = 0
    published: int = 0
    retries: dict[str, int] = field(default_factory=dict)  # by status or error
    failed_batches: int = 0
    late_batches: int = 0  # started more than one interval after they were due
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def accepted(self) -> int:
        return len(self.sent_seqs)

    @property
    def retried(self) -> int:
        return sum(self.retries.values())


class SteadySender:
    """POST ``rate`` documents/s in arrays of ``batch`` to ``<beater>/api/v0.1/ingest/<index>``."""

    def __init__(
        self,
        beater_url: str,
        index: str,
        make_doc: Callable[[int], Doc],
        rate: float,
        batch: int,
        first_seq: int = 0,
        workers: int = 8,
    ) -> None:
        parts = urlsplit(beater_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = f"/api/v0.1/ingest/{index}"
        self.make_doc = make_doc
        self.rate, self.batch = rate, batch
        self.next_seq = first_seq
        self.workers = workers
        self._local = threading.local()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = SendStats()

    # -- running -------------------------------------------------------

    def start(self, seconds: float) -> None:
        """Send for ``seconds`` in the background (``join`` waits for the last answer)."""
        self.stats = SendStats()
        self._stop.clear()
        self._thread = threading.Thread(target=self._schedule, args=(seconds,), daemon=True, name="sender")
        self._thread.start()

    def join(self, timeout: float = 120.0) -> SendStats:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.stats

    def stop(self) -> None:
        self._stop.set()

    def _schedule(self, seconds: float) -> None:
        interval = self.batch / self.rate
        t0 = time.monotonic()
        self.stats.started = time.time()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="sender") as pool:
            k = 0
            while not self._stop.is_set():
                due = t0 + k * interval
                if due - t0 >= seconds:
                    break
                # Pacing a generator to its schedule (not waiting for an outcome).
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                seqs = list(range(self.next_seq, self.next_seq + self.batch))
                self.next_seq += self.batch
                pool.submit(self._send, seqs, due, interval)
                k += 1
        self.stats.ended = time.time()

    # -- one batch ---------------------------------------------------------

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self._local.conn = conn
        return conn

    def _send(self, seqs: list[int], due: float, interval: float) -> None:
        if time.monotonic() - due > interval:
            with self.stats.lock:
                self.stats.late_batches += 1
        body = json.dumps([self.make_doc(n) for n in seqs], separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        for attempt in range(MAX_ATTEMPTS):
            t0 = time.perf_counter()
            retry_after: float | None = None
            try:
                conn = self._conn()
                conn.request("POST", self.path, body, headers)
                resp = conn.getresponse()
                payload = resp.read()
                status = resp.status
                if status == 200:
                    published = int(json.loads(payload).get("published", 0))
                    with self.stats.lock:
                        self.stats.requests += 1
                        self.stats.published += published
                        self.stats.sent_seqs.extend(seqs)
                        self.stats.latencies.append(time.perf_counter() - t0)
                    return
                if status not in RETRY_STATUSES:
                    break  # a sender drops a batch refused with another 4xx
                reason = str(status)
                header = resp.getheader("Retry-After")
                retry_after = float(header) if header and header.replace(".", "", 1).isdigit() else None
            except (OSError, http.client.HTTPException) as exc:
                reason = exc.__class__.__name__
                self._local.conn = None
            with self.stats.lock:
                self.stats.retries[reason] = self.stats.retries.get(reason, 0) + 1
            backoff = retry_after if retry_after is not None else min(0.1 * 2**attempt, 5.0)
            if self._stop.wait(backoff):  # backing off before a retry, as Logstash does
                break
        with self.stats.lock:
            self.stats.failed_batches += 1


def log_doc(pad: int) -> Callable[[int], Doc]:
    """Documents shaped like a log line, ``pad`` extra bytes of message each."""
    filler = ("lorem ipsum dolor sit amet " * (pad // 27 + 1))[:pad]

    def make(n: int) -> Doc:
        return {
            "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
            "level": "error",
            "service": "swarm",
            "host": f"web{n % 50:03d}",
            "message": f"request {n} failed: upstream timeout {filler}",
            SEQ_FIELD: n,
        }

    return make
