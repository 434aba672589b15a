"""End-to-end benchmark of the beater: HTTP ingest -> percolate -> acknowledged WAMP delivery.

Why this exists
---------------
``bench/percolate_modes.py`` measures the engine alone. What a user gets is the
whole path: a sender POSTs documents to the beater, the beater batches them,
percolates them in Elasticsearch, publishes every match with acknowledgement
to the router and only then answers; a WAMP subscriber receives the hits.
This script measures that path on real processes it starts itself (one
engine, one router, one beater, all on free loopback ports) over a matrix:

  Q  stored queries            10, 100, 1000  (seeded, realistic log alerts)
  R  documents per request     1, 100, 1000
  C  concurrent HTTP senders   1, 4

Per scenario (fresh index, Q queries registered over WAMP, one client
subscribed to all their topics) it reports ingest throughput and request
latency; the end-to-end latency of every hit (each document carries the wall
clock time its request was sent, the subscriber subtracts it on arrival);
hits delivered per second and whether the subscriber received exactly the
``published`` total the beater reported; the peak RSS of the beater and of
the router's process tree (sampled VmRSS).

On the same engine it runs the baselines that show the beater's overhead:
plain ``_bulk`` indexing of the same documents at the same request sizes and
concurrency, and plain percolation of the same documents in batches of 250
(the beater's default batch size, one ``percolate`` query with a
``documents`` array) against the beater's own percolator index for each Q.

Sender, subscriber, beater, router and engine share this machine's cores, as
on a developer box: the figures are for comparison, not absolute. Nothing is
asserted on time.

Usage::

    .venv/bin/python -m bench.ingest_e2e [--quick] [--keep]

Progress goes to stderr, the table to stdout; a full run also writes the
table to ``bench/results-ingest-e2e-<date>.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import treq
import txaio
from autobahn.twisted.component import Component
from elasticsearch import Elasticsearch
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import blockingCallFromThread
from twisted.web.client import HTTPConnectionPool

from bench._stack import Stack, emit, log, run_in_workdir
from devstack.router import REPO

warnings.filterwarnings("ignore")  # "security not enabled" deprecation headers
txaio.use_twisted()

SEED = 20251127
PERC_PREFIX = "estrom-queries-"  # the beater's default ESTROM_QUERY_INDEX_PREFIX
PERC_FIELD = "estrom_query"
SID_FIELD = "estrom_sid"
ACTIVE_FIELD = "estrom_active"  # only active queries are percolated (beater/lifecycle.py)
LAST_ACTIVE_FIELD = "estrom_last_active"
PERC_BATCH = 250  # the beater's default ESTROM_BATCH_SIZE
PAGE = 10_000  # index.max_result_window

Doc = dict[str, Any]
Query = str | dict[str, Any]


# --------------------------------------------------------------------------
# Deterministic data: log lines and the alert queries people register on them
# --------------------------------------------------------------------------

LEVELS = ["info", "warn", "error", "debug"]
LEVEL_WEIGHTS = [70, 15, 8, 7]
SERVICES = [f"svc{i}" for i in range(20)]
STATUSES = [200, 201, 204, 301, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504]
STATUS_WEIGHTS = [50, 5, 4, 2, 5, 4, 3, 2, 9, 2, 6, 3, 4, 1]
_LOG_TEXT = """
timeout connection refused reset retry failed success request response latency slow error
exception null pointer disk full memory heap cpu thread pool exhausted queue backlog dropped
packet socket closed opened handshake certificate expired token invalid user login logout
password denied granted cache miss hit evicted write read commit rollback deadlock lock
acquired released shard replica leader election vote upstream downstream
"""
LOG_WORDS = _LOG_TEXT.split()


class Dataset:
    """A Zipf-like vocabulary; makes documents and queries from one seeded RNG each."""

    def __init__(self, seed: int, size: int = 400) -> None:
        rng = random.Random(seed)
        words, seen = list(LOG_WORDS), set(LOG_WORDS)
        while len(words) < size:
            w = "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))
            if w not in seen:
                seen.add(w)
                words.append(w)
        self.vocab = words
        self.weights = [1.0 / (rank + 8) for rank in range(len(words))]

    def docs(self, count: int) -> list[Doc]:
        rng = random.Random(SEED + 1)
        start = datetime(2025, 11, 1, tzinfo=UTC)
        return [
            {
                "@timestamp": (start + timedelta(milliseconds=97 * i)).isoformat(timespec="milliseconds"),
                "level": rng.choices(LEVELS, LEVEL_WEIGHTS)[0],
                "service": rng.choice(SERVICES),
                "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
                "message": " ".join(rng.choices(self.vocab, self.weights, k=rng.randint(4, 10))),
                "user": f"u{rng.randint(1, 2000)}",
                "seq": i,
            }
            for i in range(count)
        ]

    def queries(self, seed: int) -> Iterator[Query]:
        """An endless mix of Lucene query strings and query DSL, as alert rules look."""
        rng = random.Random(seed)
        while True:
            yield self._query(rng)

    def _query(self, rng: random.Random) -> Query:
        svc, word, word2 = rng.choice(SERVICES), rng.choice(self.vocab), rng.choice(self.vocab)
        kind = rng.randrange(9)
        if kind == 0:
            return f"level:{rng.choice(['error', 'warn'])} AND service:{svc}"
        if kind == 1:
            return f"message:({word} OR {word2})"
        if kind == 2:
            lo = rng.choice([400, 404, 429, 500, 502, 503])
            return f"status:[{lo} TO {lo + rng.randint(0, 99)}] AND service:{svc}"
        if kind == 3:
            return f"{word} AND NOT level:debug AND service:{svc}"  # bare word: every field
        if kind == 4:
            return {"match": {"message": {"query": f"{word} {word2}", "operator": "and"}}}
        if kind == 5:
            return {"term": {"user.keyword": f"u{rng.randint(1, 2000)}"}}
        if kind == 6:
            return {"match_phrase": {"message": f"{word} {word2}"}}
        if kind == 7:
            return {
                "bool": {
                    "filter": [{"term": {"service.keyword": svc}}, {"range": {"status": {"gte": 500}}}],
                    "must": [{"match": {"message": word}}],
                }
            }
        return {
            "bool": {
                "must": [{"term": {"level.keyword": "error"}}],
                "should": [{"match": {"message": word}}, {"term": {"service.keyword": svc}}],
                "minimum_should_match": 1,
            }
        }


def encode_docs(docs: list[Doc]) -> list[str]:
    """Each document as JSON without its closing brace, so a send time can be appended cheaply."""
    return [json.dumps(d, separators=(",", ":"))[:-1] for d in docs]


def stamped(open_docs: list[str], sent_at: float) -> list[str]:
    return [f'{d},"sent_at":{sent_at!r}}}' for d in open_docs]


# --------------------------------------------------------------------------
# The stack: engine, router, beater on free ports; memory sampling
# --------------------------------------------------------------------------


def proc_status_kib(pid: int, key: str) -> int:
    """``VmRSS``/``VmHWM`` of a process in KiB, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (the crossbar controller forks its router worker)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid_ppid = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(pid_ppid[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads) so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle and I/O wait since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    """What the processes used during one run: CPU in % of one core, peak RSS in MiB."""

    cpu: dict[str, float]
    rss_mib: dict[str, float]


class Probe:
    """CPU use of every process under test, and peak VmRSS of beater and router sampled every 50 ms.

    The sender and subscriber (this process) are measured too, and so is
    "other": everything else the machine ran meanwhile (a shared box).
    """

    RSS_OF = ("beater", "router")

    def __init__(self, trees: dict[str, list[int]]) -> None:
        self.trees = trees
        self.peaks = dict.fromkeys(self.RSS_OF, 0)
        self._cpu0: dict[str, float] = {}
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="probe")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for name in self.RSS_OF:
                rss = sum(proc_status_kib(p, "VmRSS") for p in self.trees[name])
                self.peaks[name] = max(self.peaks[name], rss)

    def start(self) -> None:
        self.peaks = dict.fromkeys(self.RSS_OF, 0)
        self._cpu0 = {name: cpu_seconds(pids) for name, pids in self.trees.items()}
        self._cpu0["other"] = machine_busy_seconds() - sum(self._cpu0.values())
        self._t0 = time.perf_counter()

    def usage(self) -> Usage:
        wall = time.perf_counter() - self._t0
        used = {name: cpu_seconds(pids) for name, pids in self.trees.items()}
        used["other"] = machine_busy_seconds() - sum(used.values())
        cpu = {name: max(0.0, 100 * (used[name] - self._cpu0[name]) / wall) for name in used}
        return Usage(cpu, {name: kib / 1024 for name, kib in self.peaks.items()})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# --------------------------------------------------------------------------
# The client side on a reactor thread: WAMP subscriber and HTTP senders
# --------------------------------------------------------------------------


def start_reactor() -> threading.Thread:
    thread = threading.Thread(
        target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True, name="reactor"
    )
    thread.start()
    return thread


def blocking(fn: Callable[[], Any], timeout: float = 600.0) -> Any:
    """Run ``fn`` on the reactor (it may return a coroutine or Deferred) and wait for its result."""

    def call() -> Deferred[Any]:
        result = fn()
        if hasattr(result, "__await__") and not isinstance(result, Deferred):
            result = ensureDeferred(result)
        if not isinstance(result, Deferred):
            d: Deferred[Any] = Deferred()
            d.callback(result)
            return d
        result.addTimeout(timeout, reactor)
        return result

    return blockingCallFromThread(reactor, call)


class HitLog:
    """Every hit one scenario's subscriber received. Touched on the reactor thread only."""

    def __init__(self) -> None:
        self.count = 0
        self.events = 0
        self.latencies: list[float] = []
        self.last = 0.0
        self._target: tuple[int, Deferred[bool]] | None = None

    def on_event(self, *hits: Any, **_kwargs: Any) -> None:
        now = time.time()
        for hit in hits:
            self.latencies.append(now - hit["_source"]["sent_at"])
        self.count += len(hits)
        self.events += 1
        self.last = now
        if self._target and self.count >= self._target[0]:
            self._target[1].callback(True)
            self._target = None

    def wait_for(self, count: int, timeout: float) -> Deferred[bool]:
        """Fires True once ``count`` hits arrived, False after ``timeout`` seconds."""
        d: Deferred[bool] = Deferred()
        if self.count >= count:
            d.callback(True)
            return d
        self._target = (count, d)

        def expire() -> None:
            if self._target is not None and self._target[1] is d:
                self._target = None
                d.callback(False)

        reactor.callLater(timeout, expire)
        return d


class WampClient:
    """One anonymous WAMP session (JSON, like the beater's) that registers queries and subscribes.

    Anonymous sessions get the router's ``browser`` role: they may call
    register_query and subscribe to ``docs-for-*``, which is all this needs.
    """

    def __init__(self, url: str) -> None:
        self.session: Any = None
        self._component = Component(
            transports=[{"type": "websocket", "url": url, "max_retries": 0, "serializers": ["json"]}],
            realm="estrom",
        )
        blocking(self._join, timeout=30)

    def _join(self) -> Deferred[Any]:
        joined: Deferred[Any] = Deferred()

        def on_join(session: Any, _details: Any) -> None:
            self.session = session
            if not joined.called:
                joined.callback(session)

        def on_leave(_session: Any, details: Any) -> None:
            if not joined.called:
                joined.errback(
                    RuntimeError(f"router refused the session: {details.reason} {details.message}")
                )

        self._component.on("join", on_join)
        self._component.on("leave", on_leave)
        self._component.start(reactor).addErrback(lambda f: None if joined.called else joined.errback(f))
        return joined

    def register_queries(self, index: str, queries: Iterator[Query], count: int) -> list[str]:
        """Register queries until ``count`` distinct sids exist (equivalent queries share one)."""

        async def run() -> list[str]:
            sem = DeferredSemaphore(8)
            sids: dict[str, None] = {}
            while len(sids) < count:
                batch = [next(queries) for _ in range(count - len(sids))]
                calls = [sem.run(self.session.call, "com.estrom.register_query", index, q) for q in batch]
                for sid in await gatherResults(calls, consumeErrors=True):
                    sids[sid] = None
            return list(sids)[:count]

        return blocking(run)

    def subscribe(self, sids: list[str], handler: Callable[..., None]) -> list[Any]:
        async def run() -> list[Any]:
            calls = [self.session.subscribe(handler, f"docs-for-{sid}") for sid in sids]
            return await gatherResults(calls, consumeErrors=True)

        return blocking(run)

    def unsubscribe(self, subscriptions: list[Any]) -> None:
        blocking(lambda: gatherResults([s.unsubscribe() for s in subscriptions], consumeErrors=True))

    def close(self) -> None:
        if self.session is not None and self.session.is_attached():
            with contextlib.suppress(Exception):
                blocking(self.session.leave, timeout=5)
        with contextlib.suppress(Exception):
            blocking(self._component.stop, timeout=5)


@dataclass
class SendStats:
    """What the senders saw: per-request latencies and the beater's answers."""

    latencies: list[float] = field(default_factory=list)
    docs: int = 0
    accepted: int = 0
    published: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    start: float = 0.0  # wall clock, like the hits' sent_at
    end: float = 0.0


async def post_chunk(url: str, chunk: list[str], pool: HTTPConnectionPool, stats: SendStats) -> None:
    """POST one JSON array; on 429/503 wait Retry-After and resend the whole request."""
    for _attempt in range(10):
        body = ("[" + ",".join(stamped(chunk, time.time())) + "]").encode()
        t0 = time.perf_counter()
        resp = await treq.post(
            url, data=body, headers={"content-type": "application/json"}, pool=pool, timeout=120
        )
        payload = await resp.content()
        elapsed = time.perf_counter() - t0
        if resp.code == 200:
            answer = json.loads(payload)
            stats.latencies.append(elapsed)
            stats.docs += len(chunk)
            stats.accepted += answer["accepted"]
            stats.published += answer["published"]
            if answer["rejected"]:
                stats.errors.append(f"rejected: {answer['rejected'][:3]}")
            return
        if resp.code not in (429, 503):
            stats.errors.append(f"HTTP {resp.code}: {payload[:200]!r}")
            return
        stats.retries += 1
        retry_after = float(resp.headers.getRawHeaders("retry-after", ["1"])[0])
        await deferLater(reactor, retry_after, lambda: None)
    stats.errors.append("gave up after 10 attempts")


async def send_all(url: str, chunks: list[list[str]], concurrency: int, deadline: float) -> SendStats:
    """``concurrency`` senders take the next request from a shared queue until done or past deadline."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = concurrency
    stats = SendStats(start=time.time())
    queue = iter(chunks)

    async def sender() -> None:
        for chunk in queue:  # coroutines interleave only at awaits: the iterator is safe
            if time.time() > deadline:
                return
            await post_chunk(url, chunk, pool, stats)

    await gatherResults([ensureDeferred(sender()) for _ in range(concurrency)], consumeErrors=True)
    stats.end = time.time()
    await pool.closeCachedConnections()
    return stats


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def pct(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile in ms (None for an empty list)."""
    if not xs:
        return None
    s = sorted(xs)
    return 1000 * s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


@dataclass
class Row:
    kind: str
    queries: int | None
    size: int  # docs per request
    conc: int
    docs: int
    seconds: float
    latencies: list[float]
    batch: float | None = None  # docs per percolate request
    e2e: list[float] = field(default_factory=list)
    hits: int | None = None
    events: int | None = None  # WAMP events the hits came in
    hits_seconds: float = 0.0
    check: str = ""
    usage: Usage | None = None

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds else 0.0


def _num(value: float | None, width: int, fmt: str = ".0f") -> str:
    return f"{'-' if value is None else format(value, fmt):>{width}}"


def cpu_text(usage: Usage | None) -> str:
    if usage is None:
        return "-"
    return "/".join(f"{usage.cpu[name]:.0f}" for name in ("beater", "router", "engine", "client", "other"))


def rss_text(usage: Usage | None, name: str) -> str:
    return "-" if usage is None or name not in usage.rss_mib else f"{usage.rss_mib[name]:.0f}"


def format_table(rows: list[Row]) -> str:
    head = (
        f"{'kind':<12} {'Q':>5} {'R':>5} {'C':>2} {'docs':>6} {'docs/s':>6} {'batch':>5} "
        f"{'req p50':>7} {'req p99':>7} {'e2e p50':>7} {'e2e p99':>7} {'hits':>7} {'events':>6} "
        f"{'hits/s':>6} {'check':<10} {'CPU% b/r/e/c/o':>18} {'bMiB':>4} {'rMiB':>4}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        hits_s = r.hits / r.hits_seconds if r.hits is not None and r.hits_seconds else None
        lines.append(
            f"{r.kind:<12} {r.queries if r.queries else '-':>5} {r.size:>5} {r.conc:>2} {r.docs:>6} "
            f"{r.docs_per_s:>6.0f} {_num(r.batch, 5)} "
            f"{_num(pct(r.latencies, 50), 7, '.1f')} {_num(pct(r.latencies, 99), 7, '.1f')} "
            f"{_num(pct(r.e2e, 50), 7, '.1f')} {_num(pct(r.e2e, 99), 7, '.1f')} "
            f"{_num(r.hits, 7, 'd')} {_num(r.events, 6, 'd')} {_num(hits_s, 6)} {r.check:<10} "
            f"{cpu_text(r.usage):>18} {rss_text(r.usage, 'beater'):>4} {rss_text(r.usage, 'router'):>4}"
        )
    return "\n".join(lines)


LEGEND = """\
kind    beater: POST to the beater, hits received by one WAMP subscriber to all Q topics;
        beater-nosub: the same with nobody subscribed (the beater still publishes, acknowledged);
        raw-perc: percolate query with a `documents` array per 250 docs against the beater's
        percolator index (Python client, C threads); raw-bulk: plain `_bulk` into a fresh index
R, C    docs per request, concurrent senders; docs/s over the whole run (first send to last answer)
batch   docs per percolate request (beater: from its batches_total metric)
req     request latency, ms (p50, p99)
e2e     ms from a document's request being sent to its hit reaching the subscriber, per hit
events  WAMP events the hits came in (one per sid per beater batch)
hits/s  deliveries per second from first send to last hit (nosub: the beater's published count)
check   beater: delivered == published; nosub: published == the subscribed run's for the same
        docs; raw-perc: matches == the beater's published for the same docs. rN: N requests
        retried after 429/503; iN: N of the scenario's queries inactive (lifecycle sweep) at its end
CPU%    CPU used during the run in % of one core (200 = both cores) by b(eater), r(outer:
        controller + worker), e(ngine), c(lient: this process, senders + subscriber or the Python
        Elasticsearch client) and o(ther): everything else on this shared machine
MiB     peak sampled VmRSS of b(eater) and r(outer process tree) during the run"""


# --------------------------------------------------------------------------
# Scenarios and baselines
# --------------------------------------------------------------------------


@dataclass
class Bench:
    """Everything the runs share: the stack, the clients, the data, the settings."""

    stack: Stack
    wamp: WampClient
    es: Elasticsearch
    probe: Probe
    dataset: Dataset
    docs: list[str]  # encoded, open-ended (see encode_docs)
    cfg: argparse.Namespace
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    published: dict[tuple[int, int], int] = field(default_factory=dict)  # (Q, docs) -> published
    setup: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # Q -> (register, subscribe) s

    def doc_count(self, size: int) -> int:
        return self.cfg.docs_r1 if size == 1 else self.cfg.docs

    def chunks(self, size: int) -> list[list[str]]:
        docs = self.docs[: self.doc_count(size)]
        return [docs[i : i + size] for i in range(0, len(docs), size)]


def wait_activated(b: Bench, index: str, count: int, since_ms: int, timeout: float = 180.0) -> None:
    """Block until the beater has marked every subscribed query active again.

    Each new subscription makes the beater rewrite its query document
    (``refresh=true``, beater/lifecycle.py) on the same engine thread pool
    that percolates. Sending before those writes are done would time the
    lifecycle, not the ingest path; the wait is reported as set-up time.
    """
    body = {
        "query": {
            "bool": {
                "filter": [
                    {"term": {ACTIVE_FIELD: True}},
                    {"range": {LAST_ACTIVE_FIELD: {"gte": since_ms}}},
                ]
            }
        }
    }
    deadline = time.perf_counter() + timeout
    while (done := b.es.count(index=PERC_PREFIX + index, body=body)["count"]) < count:
        if time.perf_counter() > deadline:
            log(f"!!! {index}: only {done} of {count} queries activated after {timeout:.0f}s; sending anyway")
            return
        time.sleep(0.1)  # polling a condition, bounded by the deadline


def count_inactive(b: Bench, index: str) -> int:
    """Queries of this index the beater's lifecycle sweep has stopped percolating."""
    body = {"query": {"term": {ACTIVE_FIELD: False}}}
    return int(b.es.count(index=PERC_PREFIX + index, body=body)["count"])


def prepare_queries(b: Bench, index: str, queries: int, hitlog: HitLog | None) -> tuple[list[Any], str]:
    """Register Q queries; subscribe ``hitlog`` to all their topics (if given) and wait until active."""
    t0 = time.perf_counter()
    sids = b.wamp.register_queries(index, b.dataset.queries(SEED + queries), queries)
    t1 = time.perf_counter()
    subscriptions: list[Any] = []
    if hitlog is not None:
        since_ms = int(time.time() * 1000) - 1
        subscriptions = b.wamp.subscribe(sids, hitlog.on_event)
        wait_activated(b, index, len(sids), since_ms)
    t2 = time.perf_counter()
    b.setup.setdefault(queries, []).append((t1 - t0, t2 - t1))
    return subscriptions, f"register {t1 - t0:.1f}s, subscribe+activate {t2 - t1:.1f}s ({len(sids)} sids)"


def delivery_check(b: Bench, queries: int, stats: SendStats, count: int | None, complete: bool) -> str:
    """``ok`` when the subscriber got exactly what the beater published (or, without
    a subscriber, when it published what the subscribed run did for the same docs)."""
    if count is None:
        expected = b.published.get((queries, stats.docs))
        if expected is None:
            return "(no sub)"
        return "=beater" if expected == stats.published else f"MISMATCH {stats.published}/{expected}"
    return "ok" if count == stats.published and complete else f"MISMATCH {count}/{stats.published}"


def run_scenario(
    b: Bench,
    queries: int,
    size: int,
    conc: int,
    subscribe: bool = True,
    while_subscribed: Callable[[str], None] | None = None,
) -> tuple[Row, str]:
    """Fresh index; register (and subscribe to) Q queries; send; wait for every published hit.

    ``subscribe=False`` is the diagnostic variant: the beater still publishes
    every match with acknowledgement, but the router has no one to deliver to.
    ``while_subscribed(index)`` runs after the measurement, before unsubscribing.
    """
    index = f"e2e-q{queries}-r{size}-c{conc}{'' if subscribe else '-nosub'}-{b.run_id}"
    hitlog = HitLog()
    subscriptions, note = prepare_queries(b, index, queries, hitlog if subscribe else None)
    batches0 = b.stack.beater_metric("batches_total")
    url = f"{b.stack.beater_url}/api/v0.1/ingest/{index}"
    b.probe.start()
    deadline = time.time() + b.cfg.send_budget
    stats: SendStats = blocking(lambda: send_all(url, b.chunks(size), conc, deadline))
    target = stats.published if subscribe else 0
    complete = blocking(lambda: hitlog.wait_for(target, timeout=30))
    count, events, e2e, last = blocking(
        lambda: (hitlog.count, hitlog.events, list(hitlog.latencies), hitlog.last)
    )
    usage = b.probe.usage()
    inactive = count_inactive(b, index)
    batches = b.stack.beater_metric("batches_total") - batches0
    check = delivery_check(b, queries, stats, count if subscribe else None, complete)
    if subscribe:
        b.published[(queries, stats.docs)] = stats.published
    else:
        count, last = stats.published, stats.end
    if while_subscribed is not None:
        while_subscribed(index)
    if subscriptions:
        b.wamp.unsubscribe(subscriptions)
    if "MISMATCH" in check or stats.errors or inactive:
        log(
            f"!!! {index}: delivered {count}, published {stats.published}; "
            f"{inactive} of its queries inactive at the end; errors {stats.errors[:3]}"
        )
    extra = (f" r{stats.retries}" if stats.retries else "") + (f" i{inactive}" if inactive else "")
    row = Row(
        "beater" if subscribe else "beater-nosub",
        queries,
        size,
        conc,
        stats.docs,
        stats.end - stats.start,
        stats.latencies,
        batch=stats.docs / batches if batches else None,
        e2e=e2e,
        hits=count,
        events=events if subscribe else None,
        hits_seconds=max(last, stats.end) - stats.start if count else 0.0,
        check=check + extra,
        usage=usage,
    )
    return row, note


def percolate_body(docs: list[Doc], after: str | None) -> dict[str, Any]:
    """The request the beater makes for a batch (beater/percolate.py, documents mode)."""
    percolate = {"percolate": {"field": PERC_FIELD, "documents": docs}}
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [percolate, {"term": {ACTIVE_FIELD: True}}]}},
        "_source": False,
        "size": PAGE,
        "sort": [{SID_FIELD: "asc"}],
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = [after]
    return body


def percolate_batch(es: Elasticsearch, pindex: str, docs: list[Doc]) -> int:
    """Document-to-query matches of one batch, reading every page."""
    matches, after = 0, None
    while True:
        hits = es.search(index=pindex, body=percolate_body(docs, after))["hits"]["hits"]
        matches += sum(len(h["fields"]["_percolator_document_slot"]) for h in hits)
        if len(hits) < PAGE:
            return matches
        after = hits[-1]["sort"][0]


def timed_requests(
    b: Bench, work: Callable[[list[str]], int], chunks: list[list[str]], conc: int
) -> tuple[list[float], int, int, float, Usage]:
    """Run ``work`` over the chunks on ``conc`` threads until done or the send budget is spent.

    Returns (latencies, docs done, sum of work's results, wall seconds, usage).
    """
    deadline = time.perf_counter() + b.cfg.send_budget

    def one(chunk: list[str]) -> tuple[float, int, int] | None:
        if time.perf_counter() > deadline:
            return None
        t0 = time.perf_counter()
        n = work(chunk)
        return time.perf_counter() - t0, len(chunk), n

    b.probe.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(conc) as pool:
        results = [r for r in pool.map(one, chunks) if r is not None]
    seconds = time.perf_counter() - start
    usage = b.probe.usage()
    lat = [r[0] for r in results]
    return lat, sum(r[1] for r in results), sum(r[2] for r in results), seconds, usage


def raw_percolate(b: Bench, queries: int, index: str, conc: int) -> Row:
    pindex = PERC_PREFIX + index
    docs = b.docs[: b.cfg.docs]

    def work(chunk: list[str]) -> int:
        return percolate_batch(b.es, pindex, [json.loads(d) for d in stamped(chunk, time.time())])

    chunks = [docs[i : i + PERC_BATCH] for i in range(0, len(docs), PERC_BATCH)]
    lat, done, matches, seconds, usage = timed_requests(b, work, chunks, conc)
    expected = b.published.get((queries, done))
    inactive = count_inactive(b, index)
    if expected is None:
        check = "-"
    elif inactive:
        check = f"-  i{inactive}"
    elif expected == matches:
        check = "=beater"
    else:
        check = f"MISMATCH {matches}/{expected}"
        log(f"!!! raw percolate of {done} docs on {pindex}: {matches} matches, beater published {expected}")
    return Row(
        "raw-perc",
        queries,
        PERC_BATCH,
        conc,
        done,
        seconds,
        lat,
        PERC_BATCH,
        hits=matches,
        check=check,
        usage=usage,
    )


def raw_bulk(b: Bench, size: int, conc: int) -> Row:
    index = f"e2e-raw-r{size}-c{conc}-{b.run_id}"
    b.es.indices.create(index=index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})

    def work(chunk: list[str]) -> int:
        body = "".join(f'{{"index":{{}}}}\n{d}\n' for d in stamped(chunk, time.time()))
        resp = b.es.bulk(index=index, body=body, filter_path="errors")
        if resp["errors"]:
            raise RuntimeError(f"bulk into {index} reported errors")
        return 0

    lat, done, _, seconds, usage = timed_requests(b, work, b.chunks(size), conc)
    b.es.indices.delete(index=index)
    return Row("raw-bulk", None, size, conc, done, seconds, lat, size, usage=usage)


def warm_up(b: Bench) -> None:
    """Let the JITs (engine) and caches settle before anything is timed."""
    t0 = time.perf_counter()
    index = f"e2e-warmup-{b.run_id}"
    b.wamp.register_queries(index, b.dataset.queries(SEED), 50)
    url = f"{b.stack.beater_url}/api/v0.1/ingest/{index}"
    chunks = [b.docs[i : i + 100] for i in range(0, len(b.docs), 100)]
    deadline = time.time() + b.cfg.warmup_s
    while time.time() < deadline:
        blocking(lambda: send_all(url, chunks, 4, deadline))
    log(f"warm-up {time.perf_counter() - t0:.0f}s")


def log_row(row: Row, note: str = "") -> None:
    log(
        f"{row.kind:<8} Q={row.queries or '-':<5} R={row.size:<5} C={row.conc}: {row.docs} docs "
        f"{row.docs_per_s:7.0f} docs/s, {row.hits if row.hits is not None else '-'} hits, {row.check} {note}"
    )


def run_matrix(b: Bench) -> list[Row]:
    rows: list[Row] = []
    for queries in b.cfg.queries:
        raw: list[Row] = []

        def baseline(index: str, queries: int = queries, raw: list[Row] = raw) -> None:
            # While still subscribed: unsubscribed queries are soon deactivated by the beater.
            raw.extend(raw_percolate(b, queries, index, conc) for conc in b.cfg.concs)

        last = (b.cfg.sizes[-1], b.cfg.concs[-1])
        for size in b.cfg.sizes:
            for conc in b.cfg.concs:
                hook = baseline if (size, conc) == last else None
                row, note = run_scenario(b, queries, size, conc, while_subscribed=hook)
                rows.append(row)
                log_row(row, note)
        row, note = run_scenario(b, queries, *last, subscribe=False)
        rows.append(row)
        log_row(row, note)
        for row in raw:
            rows.append(row)
            log_row(row)
    for size in b.cfg.sizes:
        for conc in b.cfg.concs:
            rows.append(raw_bulk(b, size, conc))
            log_row(rows[-1])
    return rows


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny matrix, < 90 s with start-up (smoke run)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    p.add_argument("--out", type=Path, help="also write the table here (default for a full run: bench/)")
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.queries, cfg.sizes, cfg.concs = [10, 100], [1, 100], [1, 4]
        cfg.docs, cfg.docs_r1, cfg.send_budget, cfg.warmup_s = 2000, 200, 5.0, 2.0
    else:
        cfg.queries, cfg.sizes, cfg.concs = [10, 100, 1000], [1, 100, 1000], [1, 4]
        cfg.docs, cfg.docs_r1, cfg.send_budget, cfg.warmup_s = 20_000, 3000, 20.0, 15.0
        if cfg.out is None:
            cfg.out = REPO / "bench" / f"results-ingest-e2e-{time.strftime('%Y-%m-%d')}.txt"
    return cfg


def setup_lines(b: Bench) -> list[str]:
    """Untimed set-up per Q: registering the queries, then subscribing until the beater activated them."""
    out = []
    for queries, times in sorted(b.setup.items()):
        reg = sum(t[0] for t in times) / len(times)
        sub = [t[1] for t in times if t[1] > 0]
        out.append(
            f"set-up Q={queries}: register {reg:.1f}s ({queries / reg:.0f} queries/s)"
            + (f", subscribe until active {sum(sub) / len(sub):.1f}s" if sub else "")
            + f" (mean of {len(times)})"
        )
    return out


def report(rows: list[Row], b: Bench, started: float) -> str:
    hwm = proc_status_kib(b.stack.pid("beater"), "VmHWM") / 1024
    mismatches = [r for r in rows if "MISMATCH" in r.check]
    lines = [
        format_table(rows),
        "",
        LEGEND,
        "",
        f"beater VmHWM over the whole run: {hwm:.0f} MiB; engine heap {b.stack.heap}; "
        f"docs per scenario {b.cfg.docs} (R=1: {b.cfg.docs_r1}), send budget {b.cfg.send_budget:.0f}s",
        f"delivery mismatches: {len(mismatches)}" + (" !!! SEE check COLUMN !!!" if mismatches else ""),
        *setup_lines(b),
        f"machine: {os.cpu_count()} cores; total wall time {time.perf_counter() - started:.0f}s",
    ]
    return "\n".join(lines)


def run(cfg: argparse.Namespace, workdir: Path, started: float) -> None:
    """Start the stack, run everything, print the table; tear it all down whatever happens."""
    stack = Stack(workdir)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(stack.stop)
        stack.start()
        start_reactor()
        cleanup.callback(lambda: reactor.callFromThread(reactor.stop))
        probe = Probe({name: process_tree(stack.pid(name)) for name in ("beater", "router", "engine")})
        probe.trees["client"] = [os.getpid()]
        cleanup.callback(probe.stop)
        wamp = WampClient(stack.router_url)
        cleanup.callback(wamp.close)
        dataset = Dataset(SEED)
        es = Elasticsearch(stack.engine_url, timeout=120, maxsize=8)
        b = Bench(stack, wamp, es, probe, dataset, encode_docs(dataset.docs(cfg.docs)), cfg)
        log(f"quick={cfg.quick}; queries {cfg.queries}, sizes {cfg.sizes}, senders {cfg.concs}")
        warm_up(b)
        rows = run_matrix(b)
        emit(report(rows, b, started), cfg.out)
        log("tearing down")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    started = time.perf_counter()
    return run_in_workdir("e2e", lambda workdir: run(cfg, workdir, started), cfg.keep)


if __name__ == "__main__":
    sys.exit(main())
