"""Benchmark: ingest cost while the beater's query lifecycle collects 10,000 abandoned queries.

Why this exists
---------------
Every registered query is percolated against every ingested document, so a
percolator that only grows makes every ingest slower. ``beater/queries/lifecycle.py``
stops percolating queries nobody subscribes to (deactivation, one sweep
after registration) and deletes them after ``ESTROM_QUERY_GRACE`` seconds
(collection). This script shows what that buys and what it costs while it
happens: the sweep rewrites, then deletes, thousands of percolator documents
with ``refresh=true`` in the same engine that serves the ingest load.

What it does, on real processes it starts itself (one engine with a 1g heap,
one router, ONE beater with ``ESTROM_QUERY_GRACE=20`` and
``ESTROM_QUERY_SWEEP_INTERVAL=2`` by default, all on free loopback ports):

1. baseline: a fresh index with only the 100 "live" queries (registered and
   subscribed), under the ingest load: what "flat" should look like;
2. on the experiment's index: register the 100 live queries and subscribe to
   them, then 10,000 "abandoned" ones (seeded log-alert queries, never
   subscribed). The first few hundred go through ``register_query``,
   concurrently in batches; the rest are written straight into the percolator
   index with ``_bulk``, as the documents registration writes (checked against
   one the beater wrote, sids from ``common.query.identity``): every registration
   refreshes the percolator index (``refresh=true``), which holds the RPC to
   ~15 registrations/s on a 2-core box, 11 minutes for 10,000
   (``--all-over-wamp`` to do it anyway);
3. under the ingest load, keep all 10,100 active for a while. From the start
   of the run, a prefix subscription on ``docs-for-`` itself (it covers every
   sid, so every sweep leaves all queries alone; its handler drops the hits it
   receives) holds them. Without it, queries would be deactivated in the order
   they were registered, before the experiment starts;
4. drop that subscription: the next sweep deactivates the 10,000, the one
   after the grace period deletes them; keep loading until a while after;
5. the baseline once more, to see drift over the run.

Throughout, one or two HTTP senders POST JSON arrays of 250 documents to the
beater back to back (closed loop), and every ~2 s a timeline row is printed:
the phase, read from the engine (``_count`` of ``estrom-queries-<index>``,
in total and with ``estrom_active: true``) and from the beater's lifecycle
counters (/metrics), never inferred from the clock; ingest throughput, request
latency and what the beater published per document; and the hits per document
the live subscriber received, which must not change when abandoned queries go.

Engine, router, beater, senders and subscriber share this machine's cores:
the figures are for comparison within the run. Nothing is asserted on time.

Usage::

    scripts/bench gc [--quick] [--keep]    (or: .venv/bin/python -m bench.query_gc)

Progress goes to stderr, the figures to stdout; a full run also writes them
to ``bench/results-query-gc-<date>.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autobahn.wamp.types import SubscribeOptions
from twisted.internet.defer import DeferredSemaphore, gatherResults

from beater.store.schema import ACTIVE_FIELD
from bench.harness import bench_stack, emit, log, run_in_workdir
from bench.measure import pct
from bench.stored_queries import PERC_PREFIX, check_document_shape, query_document
from bench.workload import LOG_WORDS
from common.engine import sync_client
from common.query.identity import canonicalize, normalize_query, sid_for
from devstack.metrics_page import samples
from devstack.router import REPO
from devstack.sender import Attempt, Retry, Sender
from devstack.stack import Stack
from devstack.wamp_client import WampClient, on_reactor

warnings.filterwarnings("ignore")  # "security not enabled" deprecation headers

SEED = 20261127
#: A prefix subscription covering every sid: it holds every sweep (see step 3).
HOLD_TOPIC = "docs-for-"

Doc = dict[str, Any]
Query = str | dict[str, Any]


# --------------------------------------------------------------------------
# Deterministic data: log lines, and the alert queries people type on them
# --------------------------------------------------------------------------

LEVELS = ["info", "warn", "error", "debug"]
LEVEL_WEIGHTS = [70, 15, 8, 7]
SERVICES = [f"svc{i}" for i in range(20)]
#: One token each: ``host:web-001`` in a query string would match every "web" host.
HOSTS = [f"web{i:03d}" for i in range(200)]
STATUSES = [200, 201, 204, 301, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504]
STATUS_WEIGHTS = [50, 5, 4, 2, 5, 4, 3, 2, 9, 2, 6, 3, 4, 1]


class LogData:
    """A Zipf-like vocabulary; documents and queries each come from their own seeded RNG."""

    def __init__(self, seed: int = SEED, size: int = 400) -> None:
        rng = random.Random(seed)
        words, seen = list(LOG_WORDS), set(LOG_WORDS)
        while len(words) < size:
            word = "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))
            if word not in seen:
                seen.add(word)
                words.append(word)
        self.vocab = words
        self.weights = [1.0 / (rank + 8) for rank in range(size)]

    def docs(self, count: int) -> list[Doc]:
        rng = random.Random(SEED + 1)
        start = datetime(2026, 11, 1, tzinfo=UTC)
        return [
            {
                "@timestamp": (start + timedelta(milliseconds=97 * i)).isoformat(timespec="milliseconds"),
                "level": rng.choices(LEVELS, LEVEL_WEIGHTS)[0],
                "service": rng.choice(SERVICES),
                "host": rng.choice(HOSTS),
                "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
                "latency_ms": int(rng.expovariate(1 / 80)),
                "message": " ".join(rng.choices(self.vocab, self.weights, k=rng.randint(4, 10))),
                "user": f"u{rng.randint(1, 5000)}",
            }
            for i in range(count)
        ]

    def queries(self, seed: int) -> Iterator[Query]:
        """An endless mix of Lucene query strings and query DSL, as alerts and look-ups are."""
        rng = random.Random(seed)
        while True:
            yield self._query(rng)

    def _query(self, rng: random.Random) -> Query:
        svc, host = rng.choice(SERVICES), rng.choice(HOSTS)
        word, word2 = rng.choice(self.vocab), rng.choice(self.vocab)
        kind = rng.randrange(9)
        if kind == 0:
            return f"user:u{rng.randint(1, 5000)}"
        if kind == 1:
            return f"host:{host} AND level:{rng.choice(['error', 'warn'])}"
        if kind == 2:
            return f"service:{svc} AND status:{rng.choice([500, 502, 503, 504])}"
        if kind == 3:
            return f'message:"{word} {word2}"'
        if kind == 4:
            return f"level:error AND message:{word} AND NOT host:{host}"
        if kind == 5:
            return {"match": {"message": {"query": f"{word} {word2}", "operator": "and"}}}
        if kind == 6:
            return {
                "bool": {
                    "filter": [
                        {"term": {"service.keyword": svc}},
                        {"range": {"latency_ms": {"gte": rng.choice([300, 400, 500, 750])}}},
                    ]
                }
            }
        if kind == 7:
            return {
                "bool": {"filter": [{"term": {"host.keyword": host}}, {"range": {"status": {"gte": 500}}}]}
            }
        return {
            "bool": {
                "must": [{"term": {"level.keyword": "error"}}, {"match": {"message": word}}],
                "filter": [{"term": {"service.keyword": svc}}],
            }
        }


def request_bodies(docs: list[Doc], size: int) -> list[bytes]:
    """The documents as ready-to-send JSON arrays of ``size``: the senders only send."""
    return [json.dumps(docs[i : i + size]).encode() for i in range(0, len(docs) - size + 1, size)]


# --------------------------------------------------------------------------
# The stack: engine, router, one beater on free ports (as tests/conftest.py)
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Queries: registered over WAMP, or written straight into the percolator index
# --------------------------------------------------------------------------


class HitCounter:
    """Counts the hits the live subscriber receives (called on the reactor thread)."""

    def __init__(self) -> None:
        self.hits = 0

    def __call__(self, *hits: Any, **_kwargs: Any) -> None:
        self.hits += len(hits)


def distinct_queries(index: str, queries: Iterator[Query], count: int, exclude: set[str]) -> dict[str, Query]:
    """The next ``count`` queries with a sid not in ``exclude`` (equivalent queries share a sid)."""
    found: dict[str, Query] = {}
    while len(found) < count:
        query = next(queries)
        sid = sid_for(index, canonicalize(normalize_query(query)))
        if sid not in exclude and sid not in found:
            found[sid] = query
    return found


async def _register_batch(session: Any, index: str, queries: list[Query], concurrency: int) -> list[str]:
    sem = DeferredSemaphore(concurrency)
    calls = [sem.run(session.call, "com.estrom.register_query", index, q) for q in queries]
    return await gatherResults(calls, consumeErrors=True)


def register_queries(
    client: WampClient,
    index: str,
    queries: dict[str, Query],
    label: str,
    batch: int = 250,
    concurrency: int = 16,
) -> float:
    """``com.estrom.register_query`` for each, concurrently in batches; returns registrations per second."""
    items = list(queries.items())
    t0 = time.perf_counter()
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        got = on_reactor(
            _register_batch, client.session, index, [q for _, q in chunk], concurrency, timeout=600
        )
        if got != [sid for sid, _ in chunk]:
            raise RuntimeError(
                f"register_query answered sids that differ from common.query.identity.sid_for: {got[:3]}"
            )
        done = start + len(chunk)
        log(f"  {label}: {done}/{len(items)} registered over WAMP, {done / (time.perf_counter() - t0):.1f}/s")
    return len(items) / (time.perf_counter() - t0)


def seed_queries(es: Any, index: str, queries: dict[str, Query], chunk: int = 1000) -> float:
    """Write the queries' documents with ``_bulk``, as registration would have; returns docs per second."""
    pindex, items = PERC_PREFIX + index, list(queries.items())
    t0 = time.perf_counter()
    for start in range(0, len(items), chunk):
        now_ms = int(time.time() * 1000)
        lines: list[dict[str, Any]] = []
        for sid, query in items[start : start + chunk]:
            lines += [{"index": {"_index": pindex, "_id": sid}}, query_document(index, query, now_ms)]
        resp = es.bulk(body=lines, filter_path="errors,items.*.error")
        if resp.get("errors"):
            raise RuntimeError(f"seeding {pindex} failed: {resp['items'][:2]}")
        log(f"  abandoned: {start + len(lines) // 2}/{len(items)} written to {pindex}")
    es.indices.refresh(index=pindex)
    return len(items) / (time.perf_counter() - t0)


def subscribe_all(client: WampClient, sids: list[str], handler: HitCounter) -> None:
    on_reactor(
        lambda: gatherResults([client.session.subscribe(handler, f"docs-for-{sid}") for sid in sids]),
        timeout=120,
    )


def hold_sweeps(client: WampClient) -> Any:
    """Subscribe to ``HOLD_TOPIC`` by prefix; returns the subscription (unsubscribe to release)."""
    options = SubscribeOptions(match="prefix")
    return on_reactor(lambda: client.session.subscribe(lambda *_a, **_k: None, HOLD_TOPIC, options=options))


# --------------------------------------------------------------------------
# The ingest load: closed-loop senders on threads
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# The timeline: one row per window, phase from counts and metrics
# --------------------------------------------------------------------------

LIFECYCLE_METRICS = ("lifecycle_sweeps_total", "queries_deactivated_total", "queries_collected_total")


@dataclass
class State:
    """The engine's count of stored and active queries, and the beater's lifecycle counters."""

    stored: int
    active: int
    sweeps: int
    deactivated: int
    collected: int


@dataclass
class Window:
    elapsed: float  # seconds since the first window of the run, at the window's end
    phase: str
    state: State
    seconds: float
    done: list[Attempt]
    refused: int
    live_hits: int

    @property
    def docs(self) -> int:
        return sum(d.accepted for d in self.done)

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds

    @property
    def published_per_doc(self) -> float | None:
        return sum(d.published for d in self.done) / self.docs if self.docs else None

    @property
    def live_per_doc(self) -> float | None:
        return self.live_hits / self.docs if self.docs else None

    def latency_ms(self, p: float) -> float | None:
        return pct([d.seconds for d in self.done], p)


def phase_of(prev: State, cur: State, live: int, total: int) -> str:
    """What the lifecycle did during a window, from the counts and the counters only."""
    if cur.stored < prev.stored or cur.collected > prev.collected or live < cur.stored < total:
        return "collecting"
    if cur.active < prev.active or cur.deactivated > prev.deactivated:
        return "deactivating"
    if cur.stored <= live:
        return "collected"
    if cur.active <= live:
        return "all-deactivated"
    if cur.active == cur.stored:
        return "all-active"
    return "partly-active"


class Timeline:
    """Cuts the run into windows of ``step`` seconds and reads the state at each window's end."""

    def __init__(self, stack: Stack, es: Any, load: Load, counter: HitCounter, step: float) -> None:
        self.stack, self.es, self.load, self.counter, self.step = stack, es, load, counter, step
        self.origin = time.monotonic()
        self.rows: list[tuple[str, Window]] = []  # (segment, window)
        self._mark = self.origin
        self._hits = 0

    def state(self, index: str) -> State:
        pindex = PERC_PREFIX + index
        stored = self.es.count(index=pindex)["count"]
        active = self.es.count(index=pindex, body={"query": {"term": {ACTIVE_FIELD: True}}})["count"]
        m = samples(self.stack.beater.url, prefix="estrom_beater_")
        return State(stored, active, *(int(m.get(name, 0)) for name in LIFECYCLE_METRICS))

    def restart(self) -> None:
        """Begin a new window now (after a pause in the load)."""
        self._mark = time.monotonic()
        self._hits = self.counter.hits

    def window(self, segment: str, index: str, phase: Callable[[State], str]) -> Window:
        """Wait for the end of the current window; record and print it."""
        time.sleep(max(0.0, self._mark + self.step - time.monotonic()))
        end = time.monotonic()
        state = self.state(index)
        hits = self.counter.hits
        row = Window(
            end - self.origin,
            phase(state),
            state,
            end - self._mark,
            *self.load.between(self._mark, end),
            hits - self._hits,
        )
        self._mark, self._hits = end, hits
        self.rows.append((segment, row))
        log(f"{segment:<9} {format_row(row)}")
        return row


TIMELINE_HEAD = (
    f"{'t s':>6} {'phase':<16} {'stored':>6} {'active':>6} {'docs/s':>6} {'reqs':>4} {'503':>3} "
    f"{'p50 ms':>6} {'p99 ms':>6} {'pub/doc':>7} {'live/doc':>8} {'sweeps':>6} {'deact':>6} {'coll':>6}"
)


def _num(value: float | None, width: int, fmt: str) -> str:
    return f"{'-' if value is None else format(value, fmt):>{width}}"


def format_row(w: Window) -> str:
    s = w.state
    return (
        f"{w.elapsed:>6.1f} {w.phase:<16} {s.stored:>6} {s.active:>6} {w.docs_per_s:>6.0f} {len(w.done):>4} {w.refused:>3} "
        f"{_num(w.latency_ms(50), 6, '.0f')} {_num(w.latency_ms(99), 6, '.0f')} "
        f"{_num(w.published_per_doc, 7, '.2f')} {_num(w.live_per_doc, 8, '.3f')} "
        f"{s.sweeps:>6} {s.deactivated:>6} {s.collected:>6}"
    )


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


@dataclass
class Bench:
    stack: Stack
    client: WampClient
    es: Any
    data: LogData
    load: Load
    timeline: Timeline
    counter: HitCounter
    cfg: argparse.Namespace
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)
        log(text)

    def live_queries(self, index: str) -> set[str]:
        """Register the live queries over WAMP and subscribe to them at once, as a client does."""
        queries = distinct_queries(index, self.data.queries(SEED + 1), self.cfg.live, set())
        register_queries(self.client, index, queries, "live")
        subscribe_all(self.client, list(queries), self.counter)
        return set(queries)

    def abandoned_queries(self, index: str, live: set[str]) -> None:
        """The first ``rpc_abandoned`` over WAMP, the rest written straight into the engine."""
        cfg = self.cfg
        queries = distinct_queries(index, self.data.queries(SEED + 2), cfg.abandoned, live)
        items = list(queries.items())
        over_wamp = dict(items[: cfg.rpc_abandoned])
        rate = register_queries(
            self.client, index, over_wamp, "abandoned", cfg.register_batch, cfg.register_concurrency
        )
        self.note(f"{len(over_wamp)} abandoned queries registered over WAMP: {rate:.1f}/s")
        if len(over_wamp) < len(items):
            check_document_shape(self.es, index, *items[0])
            rate = seed_queries(self.es, index, dict(items[cfg.rpc_abandoned :]))
            self.note(f"{len(items) - len(over_wamp)} more written into the percolator index: {rate:.0f}/s")


def run_baseline(b: Bench, index: str, segment: str, seconds: float) -> None:
    """The load against ``index`` (only the live queries) for ``seconds``."""
    b.load.start(index)
    b.timeline.restart()
    for _ in range(max(1, round(seconds / b.cfg.step))):
        b.timeline.window(segment, index, lambda _s: "baseline")
    b.load.stop()


def warm_up(b: Bench, index: str) -> None:
    """Let the engine's JIT and caches settle: at least ``warmup`` seconds and ``warmup_requests``."""
    t0 = time.monotonic()
    b.load.start(index)
    while time.monotonic() - t0 < b.cfg.warmup or b.load.requests < b.cfg.warmup_requests:
        time.sleep(0.2)
    b.load.stop()
    log(f"warm-up: {b.load.requests} requests in {time.monotonic() - t0:.0f}s")


def run_experiment(b: Bench, index: str, hold: Any) -> None:
    """All active under load, then release the hold and follow deactivation and collection."""
    b.load.start(index)
    b.timeline.restart()
    prev = b.timeline.state(index)

    def phase(cur: State) -> str:
        nonlocal prev
        name, prev = phase_of(prev, cur, b.cfg.live, b.cfg.live + b.cfg.abandoned), cur
        return name

    for _ in range(round(b.cfg.active_seconds / b.cfg.step)):
        b.timeline.window("gc", index, phase)
    on_reactor(hold.unsubscribe)
    released = time.perf_counter()
    b.note("hold released: from here on the abandoned queries have no subscriber the lifecycle would spare")
    collected_for = 0.0
    deadline = released + 2 * b.cfg.interval + b.cfg.grace + b.cfg.timeout
    while collected_for < b.cfg.after_seconds and time.perf_counter() < deadline:
        row = b.timeline.window("gc", index, phase)
        collected_for = collected_for + row.seconds if row.phase == "collected" else 0.0
    if collected_for < b.cfg.after_seconds:
        b.note(f"!!! not collected within {time.perf_counter() - released:.0f}s of the release")
    b.load.stop()
    check_counters(b, b.timeline.rows[-1][1].state)


def check_counters(b: Bench, end: State) -> None:
    """The beater's lifecycle counters against what the engine shows was done."""
    for name, counted in (("deactivated", end.deactivated), ("collected", end.collected)):
        if counted != b.cfg.abandoned:
            b.note(
                f"!!! the beater's queries_{name}_total says {counted}, "
                f"the engine's counts say {b.cfg.abandoned} queries were {name}"
            )


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

LEGEND = """\
t s = seconds since the first window; phase: baseline = fresh index with only the live queries;
all-active = all queries stored and percolated (sweeps held: step 3 of the module docstring);
deactivating / collecting = a window in which the active / stored count fell or the beater's
deactivated / collected counter rose (collecting also while only part of them is deleted);
all-deactivated = only the live queries active, all still stored; collected = only they stored.
stored / active = _count of the percolator index (active: estrom_active=true) at the window's end;
docs/s = documents of the requests answered in the window / its length; reqs = requests answered;
503 = answers 429/503 in the window (the sender waits Retry-After and resends the request);
p50/p99 ms = their latency (with fewer than 100 requests p99 is about the max); pub/doc = the
beater's `published` (deliveries acknowledged by the router) per document; live/doc = hits the
live subscriber received per document (must not change: live queries stay percolated);
sweeps / deact / coll = the beater's lifecycle_sweeps_total / queries_deactivated_total /
queries_collected_total (cumulative, all indices)."""


@dataclass
class PhaseSummary:
    name: str
    windows: list[Window]

    def line(self) -> str:
        done = [d for w in self.windows for d in w.done]
        docs = sum(d.accepted for d in done)
        seconds = sum(w.seconds for w in self.windows)
        rates = [w.docs_per_s for w in self.windows]
        pub = sum(d.published for d in done) / docs if docs else None
        live = sum(w.live_hits for w in self.windows) / docs if docs else None
        spread = f"{min(rates):.0f}-{max(rates):.0f}"
        return (
            f"{self.name:<22} {len(self.windows):>4} {seconds:>5.0f} {docs / seconds:>6.0f} {spread:>11} "
            f"{_num(pct([d.seconds for d in done], 50), 6, '.0f')} "
            f"{_num(pct([d.seconds for d in done], 99), 6, '.0f')} "
            f"{_num(pub, 7, '.2f')} {_num(live, 8, '.3f')}"
        )


def summarize(rows: list[tuple[str, Window]]) -> list[PhaseSummary]:
    """Windows grouped by (segment, phase) in order of first appearance."""
    groups: dict[str, list[Window]] = {}
    for segment, w in rows:
        name = segment if w.phase == "baseline" else w.phase
        groups.setdefault(name, []).append(w)
    return [PhaseSummary(name, ws) for name, ws in groups.items()]


def report(b: Bench, started: float) -> str:
    cfg = b.cfg
    head = "-" * len(TIMELINE_HEAD)
    lines = [
        f"query GC under ingest load: {cfg.live} live + {cfg.abandoned} abandoned queries; "
        f"ESTROM_QUERY_GRACE={cfg.grace:g} ESTROM_QUERY_SWEEP_INTERVAL={cfg.interval:g}; "
        f"{cfg.senders} sender(s) x {cfg.docs_per_request} docs/request; engine heap {cfg.heap}; "
        f"{os.cpu_count()} cores",
        "",
        f"{'segment':<9} {TIMELINE_HEAD}",
        f"{'':<9} {head}",
    ]
    for segment, w in b.timeline.rows:
        lines.append(f"{segment:<9} {format_row(w)}")
    sum_head = (
        f"{'phase':<22} {'win':>4} {'secs':>5} {'docs/s':>6} {'min-max/win':>11} "
        f"{'p50 ms':>6} {'p99 ms':>6} {'pub/doc':>7} {'live/doc':>8}"
    )
    lines += ["", "by phase (whole-phase figures; min-max of the per-window docs/s):", sum_head]
    lines += ["-" * len(sum_head)] + [s.line() for s in summarize(b.timeline.rows)]
    lines += ["", LEGEND, "", *b.notes]
    refused, errors = b.load.refused, b.load.errors
    statuses = ", ".join(f"{n} x {code}" for code, n in sorted(Counter(refused).items()))
    lines.append(f"ingest: refused {len(refused)} times ({statuses or '-'}), resent; {len(errors)} error(s)")
    lines += [f"  {e}" for e in errors[:5]]
    lines.append(f"total wall time {time.perf_counter() - started:.0f}s")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 abandoned queries, shorter phases, < 2 min")
    p.add_argument("--grace", type=float, help="ESTROM_QUERY_GRACE, s (default 20; quick 6)")
    p.add_argument("--interval", type=float, default=2.0, help="ESTROM_QUERY_SWEEP_INTERVAL, s")
    p.add_argument("--abandoned", type=int, help="abandoned queries (default 10000; quick 1000)")
    p.add_argument("--live", type=int, default=100, help="live (subscribed) queries")
    p.add_argument(
        "--rpc-abandoned",
        type=int,
        help="abandoned queries registered over WAMP, the rest written into the engine (default 200; quick 20)",
    )
    p.add_argument("--all-over-wamp", action="store_true", help="register every abandoned query over WAMP")
    p.add_argument("--senders", type=int, default=2, help="concurrent HTTP senders")
    p.add_argument("--docs-per-request", type=int, default=250)
    p.add_argument("--step", type=float, default=2.0, help="timeline window, s")
    p.add_argument("--heap", default="1g", help="engine heap")
    p.add_argument(
        "--beater-log-level", default="info", help="ESTROM_LOG_LEVEL of the beater (debug: sweeps)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    p.add_argument("--out", type=Path, help="also write the figures here (default for a full run: bench/)")
    cfg = p.parse_args(argv)
    quick = cfg.quick
    cfg.grace = cfg.grace if cfg.grace is not None else (6.0 if quick else 20.0)
    cfg.abandoned = cfg.abandoned if cfg.abandoned is not None else (1000 if quick else 10_000)
    cfg.rpc_abandoned = cfg.rpc_abandoned if cfg.rpc_abandoned is not None else (20 if quick else 200)
    cfg.rpc_abandoned = cfg.abandoned if cfg.all_over_wamp else min(cfg.rpc_abandoned, cfg.abandoned)
    cfg.warmup, cfg.warmup_requests = (3.0, 6) if quick else (15.0, 20)
    cfg.baseline_seconds = 4.0 if quick else 20.0
    cfg.active_seconds = 6.0 if quick else 20.0
    cfg.after_seconds = 4.0 if quick else 20.0
    cfg.timeout = 30.0 if quick else 90.0  # beyond 2 sweeps + grace, before giving up on collection
    cfg.register_batch, cfg.register_concurrency = 250, 16
    if cfg.out is None and not quick:
        cfg.out = REPO / "bench" / f"results-query-gc-{time.strftime('%Y-%m-%d')}.txt"
    return cfg


def run(cfg: argparse.Namespace, workdir: Path, started: float) -> None:
    """Start the stack, run everything, print the figures; tear it all down whatever happens."""
    settings = {
        "ESTROM_QUERY_GRACE": f"{cfg.grace:g}",
        "ESTROM_QUERY_SWEEP_INTERVAL": f"{cfg.interval:g}",
        "ESTROM_LOG_LEVEL": cfg.beater_log_level,
    }
    with (
        bench_stack(workdir, beater_settings=settings, heap=cfg.heap) as (stack, client),
        contextlib.ExitStack() as cleanup,
    ):
        # client: anonymous, register_query and subscribe suffice. Browsers may
        # subscribe exact only: the prefix hold is the tailor principal's.
        holder = stack.client("tailor")
        cleanup.callback(holder.close)
        data = LogData()
        load = Load(
            stack.beater.url,
            request_bodies(data.docs(20_000), cfg.docs_per_request),
            cfg.docs_per_request,
            cfg.senders,
        )
        cleanup.callback(load.stop)
        es = sync_client(stack.engine.url, timeout=60)
        counter = HitCounter()
        timeline = Timeline(stack, es, load, counter, cfg.step)
        b = Bench(stack, client, es, data, load, timeline, counter, cfg)
        base, main = f"gc-base-{b.run_id}", f"gc-{b.run_id}"
        hold = hold_sweeps(holder)  # until the experiment: nothing registered here is swept early
        b.live_queries(base)
        warm_up(b, base)
        run_baseline(b, base, "before", cfg.baseline_seconds)
        b.abandoned_queries(main, b.live_queries(main))
        run_experiment(b, main, hold)
        run_baseline(b, base, "after", cfg.baseline_seconds)
        emit(report(b, started), cfg.out)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    started = time.perf_counter()
    return run_in_workdir("gc", lambda workdir: run(cfg, workdir, started), cfg.keep)


if __name__ == "__main__":
    sys.exit(main())
