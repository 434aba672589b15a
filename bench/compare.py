"""What estrom delivers, as a fraction of its ceilings, measured in one run.

Why this exists
---------------
estrom's ceiling on a machine is the engine's batch-percolation speed and the
router's publish speed; HTTP parsing, JSON, batching, WAMP and the tailor's
fan-out should cost little on top. This script starts one engine, one router,
one beater and one tailor on free loopback ports and, in the same run:

1. engine ceiling: the beater's own percolate request (a ``documents`` array
   of B documents) sent straight to Elasticsearch, C in flight, per N;
2. router ceiling: autobahn publish (acknowledged, as the beater does) to an
   autobahn subscriber through the same crossbar router, events/s;
3. estrom end to end: a Logstash-like sender (``json_batch``, B documents per
   POST, C in flight, retrying 429/5xx) POSTs to the beater; WAMP subscribers
   on every sid and NDJSON tails through the tailor on a sample of sids
   receive the hits. Once at the most the sender gets through (closed loop),
   once paced at half that. N = 100, 1,000, 10,000 stored queries (see
   ``bench/workload.py``: a known tenth of the documents matches one query
   each, so every sid's expected hit count is known and checked);
4. fan-out: ``bench/fanout.py`` as a child process (its own stack), if present;
5. query-count scaling: the largest N stored, all but 100 unsubscribed; once
   the lifecycle sweep has deactivated the rest (counted in the engine), the
   end-to-end run again, against the N = 100 run.

Every estrom figure is printed with its ratio to the ceiling from this run,
with the CPU time per document of beater and tailor, and a goals line.
Everything shares this machine's cores (and on a shared box, other work):
figures are for comparison within the run. Nothing is asserted on time.

Usage::

    scripts/bench compare [--quick] [--queries 100,1000,10000] [--json PATH]

Progress goes to stderr, the table to stdout, the figures as JSON to
``--json`` (default: in the work directory's parent, printed at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autobahn.wamp.types import PublishOptions
from twisted.internet.defer import DeferredSemaphore, ensureDeferred, gatherResults

from beater.matching.search import scope_filter
from beater.store.schema import SHARED_SUFFIX
from beater.store.targets import RECENT_SLACK_MS
from bench.harness import bench_stack, emit, log, process_trees, run_in_workdir
from bench.measure import Probe, Usage, pct, rss_kib
from bench.receivers import HitLog, Tails
from bench.stored_queries import PERC_PREFIX, check_document_shape, query_document
from bench.workload import QuerySet, Stream, base_docs
from common.engine import sync_client
from devstack.router import REPO
from devstack.sender import Retry, Sender, SendStats
from devstack.settings import engine_dist
from devstack.stack import Stack
from devstack.wamp_client import WampClient, on_reactor

warnings.filterwarnings("ignore")  # "security not enabled" deprecation headers

ACTIVE_FIELD = "estrom_active"
ACTIVE_FEW = 100  # section 5: queries left subscribed
REGISTER_IN_FLIGHT = 64
DRAIN_S = 30.0
WARMUP_WINDOW_S = 5.0  # how long to wait for the last hits after the last answer
ATTEMPTS = 10  # a batch the beater keeps refusing is given up after this many
PACED_WORKERS = 16  # the paced sender's requests in flight at the most


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class Run:
    """One measured run of a section, as printed and as written to JSON."""

    section: str
    queries: int | None
    docs: int = 0
    seconds: float = 0.0
    docs_per_s: float = 0.0
    ceiling: float | None = None  # what docs_per_s (or events_per_s) is compared with
    ceiling_cpu_us: float | None = None  # engine CPU per doc of the engine ceiling
    events_per_s: float | None = None
    hits: int | None = None
    expected_hits: int | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)  # POST to WAMP receipt
    tail_latency_ms: dict[str, float | None] = field(default_factory=dict)  # POST to tail receipt
    request_ms: dict[str, float | None] = field(default_factory=dict)
    cpu_us_per_doc: dict[str, float] = field(default_factory=dict)
    cpu_pct: dict[str, float] = field(default_factory=dict)
    delivery: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def stack_us_per_doc(self) -> float | None:
        """CPU of engine, router, beater and tailor per document (the client excluded)."""
        return sum(self.cpu_us_per_doc.values()) if self.cpu_us_per_doc else None

    @property
    def cpu_ratio(self) -> float | None:
        """Stack CPU per document over the engine ceiling's: robust to how busy the machine is."""
        us = self.stack_us_per_doc
        return us / self.ceiling_cpu_us if us is not None and self.ceiling_cpu_us else None

    @property
    def ratio(self) -> float | None:
        value = self.events_per_s if self.section == "router" else self.docs_per_s
        return value / self.ceiling if self.ceiling and value is not None else None


def percentiles(xs: list[float]) -> dict[str, float | None]:
    return {f"p{p}": pct(xs, p) for p in (50, 95, 99)}


def stream_sender(b: Bench, qs: QuerySet, stream: Stream, first_batch: int) -> Sender:
    """The Logstash-like sender of ``stream``'s batches from ``first_batch`` on (batch ``k`` holds
    documents ``kB .. kB+B-1``, stamped with their send time)."""
    return Sender(
        b.stack.beater.url,
        qs.index,
        lambda numbers, sent_at: stream.body(numbers[0] // stream.size, sent_at),
        docs_per_batch=stream.size,
        first_number=first_batch * stream.size,
        retry=Retry(attempts=ATTEMPTS),
    )


def acked_batches(stats: SendStats, stream: Stream) -> list[int]:
    """The stream's batch numbers the beater acknowledged."""
    with stats.lock:
        return [stats.batches[i][0] // stream.size for i in stats.acked]


@dataclass
class Bench:
    """What the sections share: the stack, clients, data and settings."""

    cfg: argparse.Namespace
    stack: Stack
    wamp: WampClient
    es: Any
    probe: Probe
    base: list[str]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    runs: list[Run] = field(default_factory=list)
    registration: list[dict[str, Any]] = field(default_factory=list)
    #: every target registered so far: the ones the beater knows (its percolate scope's ``known``)
    targets: set[str] = field(default_factory=set)
    next_batch: int = 0  # batch numbers are never reused: every POST is new documents

    def batches(self, count: int) -> int:
        first, self.next_batch = self.next_batch, self.next_batch + count
        return first

    def add(self, run: Run) -> Run:
        self.runs.append(run)
        ratio = f" = {run.ratio:.2f} x ceiling" if run.ratio is not None else ""
        lat = run.latency_ms.get("p99")
        log(
            f"{run.section} N={run.queries or '-'}: {run.docs_per_s or run.events_per_s or 0:.0f}/s{ratio}"
            + (f", p99 {lat:.0f} ms" if lat is not None else "")
            + (f", delivery {run.delivery}" if run.delivery else "")
        )
        return run


# --------------------------------------------------------------------------
# Queries: subscribed first, then registered over WAMP (as users do) or seeded
# --------------------------------------------------------------------------


def subscribe(b: Bench, sids: list[str], hitlog: HitLog) -> list[Any]:
    """One WAMP subscription per sid, made before the query exists so no sweep ever deactivates it."""

    async def run() -> list[Any]:
        sem = DeferredSemaphore(256)
        calls = [sem.run(b.wamp.session.subscribe, hitlog.handler(s), f"docs-for-{s}") for s in sids]
        return await gatherResults(calls, consumeErrors=True)

    return on_reactor(run, timeout=600)


def unsubscribe(subscriptions: list[Any]) -> None:
    async def run() -> None:
        sem = DeferredSemaphore(256)
        await gatherResults([sem.run(s.unsubscribe) for s in subscriptions], consumeErrors=True)

    on_reactor(run, timeout=600)


def register(b: Bench, qs: QuerySet) -> None:
    """``com.estrom.register_query`` with many calls in flight for at most the registration budget;
    the rest written into the percolator index as registration writes them (``bench/stored_queries.py``)."""
    b.targets.add(qs.index)
    t0 = time.perf_counter()
    done = 0
    while done < len(qs.queries) and (done == 0 or time.perf_counter() - t0 < b.cfg.register_budget):
        wave = qs.queries[done : done + REGISTER_IN_FLIGHT * 4]

        async def call(wave: list[Any] = wave) -> list[str]:
            sem = DeferredSemaphore(REGISTER_IN_FLIGHT)
            calls = [sem.run(b.wamp.session.call, "com.estrom.register_query", qs.index, q) for q in wave]
            return await gatherResults(calls, consumeErrors=True)

        got = on_reactor(call, timeout=600)
        if got != qs.sids[done : done + len(wave)]:
            raise RuntimeError(
                f"register_query answered other sids than common.query.identity.sid_for: {got[:3]}"
            )
        done += len(wave)
    wamp_s = time.perf_counter() - t0
    check_document_shape(b.es, qs.index, qs.sids[0], qs.queries[0])
    seeded_s = seed(b, qs, done)
    rate = done / wamp_s
    # Memory with all N stored and subscribed: the router holds N subscriptions, the beater N sids.
    rss = {
        name: rss_kib(tree) for name, tree in process_trees(b.stack).items() if name in ("router", "beater")
    }
    b.registration.append(
        {"queries": len(qs.sids), "over_wamp": done, "wamp_per_s": rate, "seeded": len(qs.sids) - done}
        | {f"{name}_rss_kib": kib for name, kib in rss.items()}
    )
    log(
        f"N={len(qs.sids)}: {done} registered over WAMP ({REGISTER_IN_FLIGHT} in flight) at {rate:.1f}/s"
        + (
            f", {len(qs.sids) - done} more seeded with _bulk in {seeded_s:.1f}s"
            if done < len(qs.sids)
            else ""
        )
        + "; RSS "
        + ", ".join(f"{name} {kib / 1024:.0f} MiB" for name, kib in rss.items())
    )


def seed(b: Bench, qs: QuerySet, start: int, chunk: int = 2000) -> float:
    t0 = time.perf_counter()
    pindex = PERC_PREFIX + qs.index
    for first in range(start, len(qs.sids), chunk):
        now_ms = int(time.time() * 1000)
        lines: list[dict[str, Any]] = []
        for sid, query in zip(qs.sids[first : first + chunk], qs.queries[first : first + chunk], strict=True):
            lines += [{"index": {"_index": pindex, "_id": sid}}, query_document(qs.index, query, now_ms)]
        resp = b.es.bulk(body=lines, filter_path="errors,items.*.error")
        if resp.get("errors"):
            raise RuntimeError(f"seeding {pindex} failed: {resp['items'][:2]}")
    b.es.indices.refresh(index=pindex)
    return time.perf_counter() - t0


def count_active(b: Bench, index: str, active: bool) -> int:
    body = {"query": {"term": {ACTIVE_FIELD: active}}}
    return int(b.es.count(index=PERC_PREFIX + index, body=body)["count"])


def wait_until(what: str, done: Callable[[], bool], timeout: float) -> bool:
    """Poll a condition read from the engine, bounded by ``timeout``."""
    deadline = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > deadline:
            log(f"!!! {what}: not reached within {timeout:.0f}s")
            return False
        time.sleep(0.5)
    return True


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


def engine_ceiling(b: Bench, qs: QuerySet, stream: Stream, budget: float) -> Run:
    """The beater's percolate request, straight to the engine, C in flight, for ``budget`` seconds.

    On the shared percolator index, scoped as the beater scopes it (``beater.matching.search.scope_filter``):
    the covering target's queries, and the recent ones of targets it does not know."""
    pindex = PERC_PREFIX + SHARED_SUFFIX + "0"
    scope = scope_filter((qs.index,), int(time.time() * 1000) - RECENT_SLACK_MS, tuple(sorted(b.targets)))
    deadline = time.perf_counter() + budget
    first = b.batches(0)

    def work(k: int) -> tuple[int, int, float] | None:
        if time.perf_counter() > deadline:
            return None
        body = stream.percolate_body(k, scope)
        t0 = time.perf_counter()
        hits = b.es.search(index=pindex, body=body)["hits"]["hits"]
        return k, sum(len(h["fields"]["_percolator_document_slot"]) for h in hits), time.perf_counter() - t0

    b.probe.start()
    start = time.perf_counter()
    limit = int(budget * 100_000 / stream.size) + b.cfg.senders  # far more than can be done
    with ThreadPoolExecutor(b.cfg.senders) as pool:
        done = [r for r in pool.map(work, range(first, first + limit)) if r is not None]
    seconds = time.perf_counter() - start
    usage = b.probe.usage()
    expected = sum(stream.expected([k for k, _, _ in done]).values())
    matches = sum(m for _, m, _ in done)
    docs = len(done) * stream.size
    return Run(
        "engine",
        len(qs.sids),
        docs=docs,
        seconds=seconds,
        docs_per_s=docs / seconds,
        hits=matches,
        expected_hits=expected,
        request_ms=percentiles([t for _, _, t in done]),
        cpu_us_per_doc={"engine": 1e6 * usage.cpu_s["engine"] / max(docs, 1)},
        cpu_pct=cpu_pct(usage),
        delivery={"ok": matches == expected},
    )


def bracketed(before: Run, after: Run) -> Run:
    """One ceiling from a measurement just before and one just after the run it is the ceiling of:
    on a shared machine the load drifts, and bracketing halves what drift does to the ratio."""
    docs, seconds = before.docs + after.docs, before.seconds + after.seconds
    engine_us = sum(r.cpu_us_per_doc["engine"] * r.docs for r in (before, after)) / max(docs, 1)
    return Run(
        "engine",
        before.queries,
        docs=docs,
        seconds=seconds,
        docs_per_s=docs / seconds,
        hits=(before.hits or 0) + (after.hits or 0),
        expected_hits=(before.expected_hits or 0) + (after.expected_hits or 0),
        request_ms={"before_p50": before.request_ms["p50"], "after_p50": after.request_ms["p50"]},
        cpu_us_per_doc={"engine": engine_us},
        cpu_pct={
            k: round((v * before.seconds + after.cpu_pct.get(k, 0) * after.seconds) / seconds)
            for k, v in before.cpu_pct.items()
        },
        delivery={"ok": before.delivery["ok"] and after.delivery["ok"]},
        note=f"before {before.docs_per_s:.0f}, after {after.docs_per_s:.0f} docs/s",
    )


def router_ceiling(b: Bench) -> Run:
    """Acknowledged publishes (the beater's principal) to one anonymous subscriber, 64 in flight."""
    # Serialized as the beater's publishes are (common/wamp.py); received as
    # the end-to-end WAMP subscribers receive (an anonymous JSON session).
    publisher = b.stack.client("beater", serializers=("cbor",))
    topic = f"docs-for-{secrets.token_hex(8)}"  # a sid-shaped topic: browsers may subscribe to nothing else
    received = HitLog()
    sub = on_reactor(lambda: b.wamp.session.subscribe(received.handler("ceiling"), topic))
    hit = {"_index": "router-ceiling", "_source": json.loads(b.base[0] + ',"slot":"q00000","sent_at":0}')}
    options = PublishOptions(acknowledge=True)

    async def publish_for(seconds: float) -> tuple[int, float, float]:
        start = time.time()
        sent = 0

        async def worker() -> None:
            nonlocal sent
            while time.time() - start < seconds:
                source = dict(hit["_source"], sent_at=time.time())
                sent += 1
                await publisher.session.publish(topic, dict(hit, _source=source), options=options)

        await gatherResults([ensureDeferred(worker()) for _ in range(64)], consumeErrors=True)
        return sent, start, time.time()

    try:
        b.probe.start()
        sent, start, end = on_reactor(publish_for, b.cfg.router_s, timeout=b.cfg.router_s + 120)
        arrived = on_reactor(received.wait_complete, Counter(ceiling=sent), DRAIN_S, timeout=DRAIN_S + 10)
        usage = b.probe.usage()
        got = on_reactor(lambda: (received.total, received.last, list(received.latencies)))
    finally:
        on_reactor(sub.unsubscribe)
        publisher.close()
    total, last, latencies = got
    seconds = max(end, last) - start
    return b.add(
        Run(
            "router",
            None,
            seconds=seconds,
            events_per_s=total / seconds,
            hits=total,
            expected_hits=sent,
            latency_ms=percentiles(latencies),
            cpu_pct=cpu_pct(usage),
            delivery={"ok": arrived and total == sent, "published": sent, "received": total},
            note="1 hit per event, acknowledged, 64 in flight",
        )
    )


def cpu_pct(usage: Usage) -> dict[str, float]:
    return {name: round(usage.cpu_pct(name)) for name in usage.cpu_s}


def end_to_end(
    b: Bench,
    section: str,
    qs: QuerySet,
    stream: Stream,
    hitlog: HitLog,
    taillog: HitLog,
    tail_sids: list[str],
    send: Callable[[Sender], SendStats],
    ceiling: float | None,
    queries: int | None = None,
    log_it: bool = True,
) -> Run:
    """POST with ``send`` until its budget is spent, then wait for every expected hit (bounded)."""
    on_reactor(lambda: (hitlog.reset(), taillog.reset()))
    sender = stream_sender(b, qs, stream, b.batches(10**6))  # far more batch numbers than one run sends
    b.probe.start()
    stats = send(sender)
    sender.close()
    sid_of = qs.sid_of()
    expected = Counter(
        {sid_of[t]: n for t, n in stream.expected(acked_batches(stats, stream)).items() if t in sid_of}
    )
    want = sum(expected.values())
    on_reactor(hitlog.wait_complete, expected, DRAIN_S, timeout=DRAIN_S + 10)
    tails_expected = Counter({s: expected[s] for s in tail_sids})
    on_reactor(taillog.wait_complete, tails_expected, 5.0, timeout=15)  # by then the WAMP hits are in
    usage = b.probe.usage()
    wamp_check = on_reactor(hitlog.check, expected, sorted(set(expected) | set(hitlog.per_sid)))
    tail_check = on_reactor(taillog.check, expected, tail_sids)
    lat, tail_lat, events = on_reactor(
        lambda: (list(hitlog.latencies), list(taillog.latencies), hitlog.events)
    )
    seconds = stats.seconds
    docs = max(stats.docs, 1)
    run = Run(
        section,
        queries or len(qs.sids),
        docs=stats.docs,
        seconds=seconds,
        docs_per_s=stats.docs_per_s,
        ceiling=ceiling,
        events_per_s=events / seconds if seconds else None,
        hits=on_reactor(lambda: hitlog.total),
        expected_hits=want,
        latency_ms=percentiles(lat),
        tail_latency_ms=percentiles(tail_lat),
        request_ms=percentiles(stats.latencies),
        cpu_us_per_doc={n: 1e6 * usage.cpu_s[n] / docs for n in ("beater", "tailor", "router", "engine")},
        cpu_pct=cpu_pct(usage),
        delivery={
            "wamp": wamp_check,
            "tails": tail_check,
            "published": stats.published,
            "retries": stats.retried,
            "retried_on": dict(stats.retries),
            "late": stats.late,
            "errors": stats.errors[:3],
        },
    )
    return b.add(run) if log_it else run


def measure_queries(b: Bench, n: int, keep_for_scaling: bool) -> tuple[QuerySet, HitLog, list[Any]]:
    """Sections 1 and 3 for N stored queries; returns what section 5 needs when asked to keep it."""
    qs = QuerySet.make(f"cmp-n{n}-{b.run_id}", n)
    stream = Stream(b.base, qs.tokens, b.cfg.every, b.cfg.batch)
    hitlog, taillog = HitLog(), HitLog()
    t0 = time.perf_counter()
    subscriptions = subscribe(b, qs.sids, hitlog)
    log(f"N={n}: {n} WAMP subscriptions in {time.perf_counter() - t0:.1f}s")
    register(b, qs)
    wait_until(f"N={n} all active", lambda: count_active(b, qs.index, True) >= n, 60)
    tail_sids = qs.sids[: b.cfg.tails]
    tails = Tails(b.stack.tailor.url, taillog)
    on_reactor(tails.open, tail_sids, timeout=60)
    try:
        before = engine_ceiling(b, qs, stream, b.cfg.ceiling_s / 2)

        def closed(sender: Sender) -> SendStats:
            return sender.start(b.cfg.senders, b.cfg.run_s).join(b.cfg.run_s + 300)

        common = (b, "e2e-max", qs, stream, hitlog, taillog, tail_sids)
        top = end_to_end(*common, send=closed, ceiling=None, log_it=False)
        engine = b.add(bracketed(before, engine_ceiling(b, qs, stream, b.cfg.ceiling_s / 2)))
        top.ceiling, top.ceiling_cpu_us = engine.docs_per_s, engine.cpu_us_per_doc["engine"]
        b.add(top)
        half = top.docs_per_s / 2

        def paced(sender: Sender) -> SendStats:
            return sender.start_paced(half, b.cfg.run_s, workers=PACED_WORKERS).join(b.cfg.run_s + 300)

        run = end_to_end(
            b, "e2e-half", qs, stream, hitlog, taillog, tail_sids, send=paced, ceiling=engine.docs_per_s
        )
        run.ceiling_cpu_us = engine.cpu_us_per_doc["engine"]
        run.note = f"paced at {half:.0f} docs/s"
    finally:
        on_reactor(tails.close, timeout=30)
    if not keep_for_scaling:
        unsubscribe(subscriptions)
    return qs, hitlog, subscriptions


def query_scaling(b: Bench, qs: QuerySet, hitlog: HitLog, subscriptions: list[Any], base: Run) -> None:
    """Section 5: all N stored, only ACTIVE_FEW subscribed (the rest deactivated by the sweep)."""
    n = len(qs.sids)
    unsubscribe(subscriptions[ACTIVE_FEW:])
    t0 = time.perf_counter()
    timeout = 6 * b.cfg.sweep_interval + 120
    wait_until(
        f"N={n}: {n - ACTIVE_FEW} deactivated",
        lambda: count_active(b, qs.index, False) >= n - ACTIVE_FEW,
        timeout,
    )
    log(f"N={n}: {count_active(b, qs.index, True)} active after {time.perf_counter() - t0:.0f}s")
    few = QuerySet(qs.index, qs.tokens[:ACTIVE_FEW], qs.queries[:ACTIVE_FEW], qs.sids[:ACTIVE_FEW])
    stream = Stream(b.base, few.tokens, b.cfg.every, b.cfg.batch)

    def closed(sender: Sender) -> SendStats:
        return sender.start(b.cfg.senders, b.cfg.run_s).join(b.cfg.run_s + 300)

    run = end_to_end(
        b, "scaling", few, stream, hitlog, HitLog(), [], send=closed, ceiling=base.docs_per_s, queries=n
    )
    run.ceiling_cpu_us = base.stack_us_per_doc
    run.note = f"{n} stored, {ACTIVE_FEW} subscribed; ceiling = e2e-max at N={ACTIVE_FEW}"
    unsubscribe(subscriptions[:ACTIVE_FEW])


def warm_up(b: Bench) -> None:
    """Let the engine's JIT and the caches settle before anything is timed: ingest, then raw percolate."""
    t0 = time.perf_counter()
    qs = QuerySet.make(f"cmp-warmup-{b.run_id}", 50)
    # A target the beater knows from now on: the ceiling's scope leaves its queries out as the
    # beater's does (with sweeps slower than the run, they are still active at the first N).
    b.targets.add(qs.index)
    hitlog = HitLog()
    subs = subscribe(b, qs.sids, hitlog)
    for q in qs.queries:
        # The first creates the percolator index: on a loaded machine's 3-node cluster, beyond 30 s.
        b.wamp.call("com.estrom.register_query", qs.index, q, timeout=120)
    stream = Stream(b.base, qs.tokens, b.cfg.every, b.cfg.batch)
    sender = stream_sender(b, qs, stream, b.batches(10**6))
    sender.start(b.cfg.senders, b.cfg.warmup_s).join(300)
    sender.close()
    # Then raw percolation until its rate settles: whichever N was measured
    # first ran at half the engine's speed after a fixed 15 s + 15 s warm-up.
    rates: list[float] = []
    deadline = time.perf_counter() + b.cfg.warmup_max_s
    steady = False
    while not steady and time.perf_counter() < deadline:
        rates.append(engine_ceiling(b, qs, stream, WARMUP_WINDOW_S).docs_per_s)
        # Three windows in a row within 8 % of each other: a fresh engine's JIT keeps it speeding
        # up for 3-4 minutes (1.2k to 5k+ docs/s measured on 2026-12-01), in steps a 15 % test took for settled.
        steady = len(rates) >= 3 and max(rates[-3:]) < 1.08 * min(rates[-3:])
    unsubscribe(subs)
    settled = "settled" if steady else "NOT settled: the first N may run slow"
    log(
        f"warm-up {time.perf_counter() - t0:.0f}s; raw percolate docs/s {[round(r) for r in rates]} ({settled})"
    )


def fanout(cfg: argparse.Namespace) -> dict[str, Any] | None:
    """Section 4: ``bench/fanout.py`` in a child process (it starts its own stack), if it exists."""
    if not (REPO / "bench" / "fanout.py").exists():
        log("fan-out: skipped (bench/fanout.py absent)")
        return None
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    cmd = [sys.executable, "-m", "bench.fanout", "--json", str(out)] + (["--quick"] if cfg.quick else [])
    log(f"fan-out: {' '.join(cmd[1:])}")
    try:
        proc = subprocess.run(cmd, cwd=REPO, stdout=sys.stderr, timeout=cfg.fanout_timeout, check=False)
        if proc.returncode != 0:
            log(f"!!! fan-out exited {proc.returncode}")
            return None
        return json.loads(out.read_text())
    except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
        log(f"!!! fan-out failed: {exc}")
        return None
    finally:
        out.unlink(missing_ok=True)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _f(value: float | None, width: int, fmt: str = ".0f") -> str:
    return f"{'-' if value is None else format(value, fmt):>{width}}"


def delivery_text(run: Run) -> str:
    d = run.delivery
    if "wamp" not in d:
        text = "ok" if d.get("ok") else f"MISMATCH {run.hits}/{run.expected_hits}"
        return text + (f"; {run.note}" if run.note else "")
    w, t = d["wamp"], d["tails"]
    text = f"{w['sids_ok']} ok, {w['missing']} missing"
    if w["extra"]:
        text += f", {w['extra']} dup"
    if t["sids_ok"] or t["missing"]:
        text += f"; tails {t['sids_ok']} ok, {t['missing']} missing"
    if d["retries"]:
        text += (
            f"; {d['retries']} retried ("
            + ", ".join(f"{n}x {c or 'no answer'}" for c, n in d["retried_on"].items())
            + ")"
        )
    if d["errors"]:
        text += f"; ERRORS {d['errors'][0]}"
    return text + (f"; {run.note}" if run.note else "")


SECTION_NAMES = {
    "engine": "1 engine ceiling",
    "router": "2 router ceiling",
    "e2e-max": "3 estrom max",
    "e2e-half": "3 estrom @ half max",
    "scaling": "5 N stored, 100 subscribed",
}


def format_table(runs: list[Run]) -> str:
    head = (
        f"{'section':<27} {'N':>6} {'per s':>7} {'x ceil':>6} {'events/s':>8} "
        f"{'p50':>6} {'p95':>6} {'p99':>6} {'tail p99':>8} {'beat us':>7} {'tail us':>7} "
        f"{'stack us':>8} {'x CPU':>5} {'CPU% b/t/r/e/c/o':>20}  delivery"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        value = r.events_per_s if r.section == "router" else r.docs_per_s
        cpu = "/".join(
            f"{r.cpu_pct.get(n, 0):.0f}" for n in ("beater", "tailor", "router", "engine", "client", "other")
        )
        lines.append(
            f"{SECTION_NAMES[r.section]:<27} {r.queries or '-':>6} {_f(value, 7)} {_f(r.ratio, 6, '.2f')} "
            f"{_f(r.events_per_s if r.section != 'router' else None, 8)} "
            f"{_f(r.latency_ms.get('p50'), 6)} {_f(r.latency_ms.get('p95'), 6)} "
            f"{_f(r.latency_ms.get('p99'), 6)} {_f(r.tail_latency_ms.get('p99'), 8)} "
            f"{_f(r.cpu_us_per_doc.get('beater'), 7)} {_f(r.cpu_us_per_doc.get('tailor'), 7)} "
            f"{_f(r.stack_us_per_doc, 8)} {_f(r.cpu_ratio, 5, '.1f')} {cpu:>20}  {delivery_text(r)}"
        )
    return "\n".join(lines)


def format_fanout(result: dict[str, Any] | None) -> str:
    if result is None:
        return "fan-out: skipped (bench/fanout.py absent or failed; see stderr)"
    head = f"{'4 fan-out clients':<27} {'sent/s':>8} {'deliv/s':>8} {'complete':>8} {'tailor us/hit':>13} {'RSS KiB':>8} {'KiB/idle client':>15}"
    lines = [head, "-" * len(head)]
    for row in result.get("rows", []):
        lines.append(
            f"{row['clients']:<27} {row['hits_per_s_sent']:>8.0f} {row['hits_per_s_delivered']:>8.0f} "
            f"{'yes' if row['complete'] else 'NO':>8} {1e6 * row['tailor_cpu_s_per_hit']:>13.0f} "
            f"{row['tailor_rss_kib']:>8} {row['rss_per_idle_client_kib']:>15.1f}"
        )
    return "\n".join(lines)


def find(runs: list[Run], section: str, queries: int | None) -> Run | None:
    return next((r for r in runs if r.section == section and r.queries == queries), None)


def goals(runs: list[Run], fan: dict[str, Any] | None, target_n: int) -> list[dict[str, Any]]:
    """The four goals (docs/performance.md), each met / missed / not measured, with the numbers."""
    out: list[dict[str, Any]] = []

    def goal(name: str, met: bool | None, text: str) -> None:
        out.append({"goal": name, "met": met, "figures": text})

    def ratio_goal(name: str, run: Run | None, minimum: float) -> None:
        if run is None or run.ratio is None or run.ceiling is None:
            goal(name, None, "not measured")
        else:
            figures = f"{run.docs_per_s:.0f} / {run.ceiling:.0f} docs/s = {run.ratio:.2f}"
            goal(name, run.ratio >= minimum, figures)

    ratio_goal(f"throughput >= 0.8 x engine at N={target_n}", find(runs, "e2e-max", target_n), 0.8)
    half = find(runs, "e2e-half", target_n)
    p99 = half.latency_ms.get("p99") if half else None
    if half is not None and p99 is not None:
        goal(
            "p99 <= 50 ms at half max",
            p99 <= 50,
            f"p99 {p99:.1f} ms at {half.docs_per_s:.0f} docs/s, N={target_n}",
        )
    else:
        goal("p99 <= 50 ms at half max", None, "not measured")
    row = next((r for r in (fan or {}).get("rows", []) if r["clients"] == 1000), None)
    if row is not None:
        # "complete" is fanout.py's verdict that every client got every hit sent
        met = row["complete"] and row["hits_per_s_sent"] >= 95 and row["rss_per_idle_client_kib"] < 50
        goal(
            "1,000 tails, every hit at 100 hits/s, < 50 KiB/idle client",
            met,
            f"sent {row['hits_per_s_sent']:.0f}/s, delivered {row['hits_per_s_delivered']:.0f}/s, "
            f"complete {row['complete']}, {row['rss_per_idle_client_kib']:.1f} KiB/idle client",
        )
    else:
        goal(
            "1,000 tails, every hit at 100 hits/s, < 50 KiB/idle client",
            None,
            "not measured (no fan-out rows)",
        )
    scaling = next((r for r in runs if r.section == "scaling"), None)
    stored = scaling.queries if scaling else max(target_n, ACTIVE_FEW)
    ratio_goal(f"N={stored} with {ACTIVE_FEW} active >= 0.9 x N={ACTIVE_FEW}", scaling, 0.9)
    return out


LEGEND = """\
per s      docs/s (router: events/s, one hit each); x ceil: ratio to the ceiling of the same run and N
           (estrom rows: the engine ceiling, measured just before and just after estrom max;
           section 5: estrom max at N=100)
events/s   WAMP events the subscribers received (the beater publishes one per sid per batch)
p50..p99   ms from a document's POST to its hit reaching the WAMP subscriber; tail p99: to the
           NDJSON tail through the tailor (a sample of sids)
beat/tail us  CPU microseconds per document of the beater and of the tailor (CPU s per doc x 1e6)
stack us   CPU microseconds per document of engine + router + beater + tailor (engine ceiling: the
           engine's alone); x CPU: that over the engine ceiling's (section 5: over N=100 estrom max):
           unlike docs/s, it does not depend on how much of the machine others took meanwhile
CPU%       % of one core during the run (200 = both cores): b(eater) t(ailor) r(outer) e(ngine)
           c(lient: this process: senders, subscribers, tails, Python ES client) o(ther: the rest of
           the shared machine)
delivery   sids whose subscriber got exactly the expected hits, hits missing, duplicates (after a
           retry); tails: the same for the tailor's streams; engine: matches == expected"""


def report(b: Bench, fan: dict[str, Any] | None, goal_list: list[dict[str, Any]], started: float) -> str:
    reg = "; ".join(
        f"N={r['queries']}: {r['over_wamp']} over WAMP at {r['wamp_per_s']:.1f}/s"
        + (f" + {r['seeded']} seeded" if r["seeded"] else "")
        + "".join(f", {k[:-8]} RSS {v / 1024:.0f} MiB" for k, v in r.items() if k.endswith("_rss_kib"))
        for r in b.registration
    )
    cfg = b.cfg
    lines = [
        format_table(b.runs),
        "",
        format_fanout(fan),
        "",
        "goals:",
        *(
            f"  {'MET   ' if g['met'] else 'missed' if g['met'] is False else 'n/a   '} {g['goal']}: {g['figures']}"
            for g in goal_list
        ),
        "",
        LEGEND,
        "",
        f"B={cfg.batch} docs per POST, C={cfg.senders} in flight (engine ceiling: C threads), "
        f"1/{cfg.every} of the documents match one query; runs of {cfg.run_s:.0f}s, ceilings {cfg.ceiling_s:.0f}s",
        f"registration: {reg}",
        f"engine {engine_dist()}, {cfg.engine_nodes} node(s)"
        + (f" (percolator index {cfg.engine_nodes} shards, 1 replica)" if cfg.engine_nodes > 1 else "")
        + f"; load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min) at the end",
        f"sweep interval {cfg.sweep_interval:.0f}s"
        + (f"; beater settings {' '.join(cfg.beater_env)}" if cfg.beater_env else "")
        + f"; machine: {os.cpu_count()} cores, shared; "
        f"total wall time {time.perf_counter() - started:.0f}s",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller N and shorter runs (< ~4 min)")
    p.add_argument("--queries", help="comma-separated N (default 100,1000,10000; quick 100,1000)")
    p.add_argument("--batch", type=int, default=500, help="documents per POST and per percolate (B)")
    p.add_argument("--senders", type=int, default=4, help="requests in flight (C)")
    p.add_argument("--every", type=int, default=10, help="1 in EVERY documents matches a query")
    p.add_argument("--tails", type=int, default=5, help="sids also tailed through the tailor")
    p.add_argument("--json", type=Path, help="write the figures here (default: printed path under /tmp)")
    p.add_argument("--out", type=Path, help="also write the table here (default for a full run: bench/)")
    p.add_argument(
        "--beater-env",
        action="append",
        default=[],
        metavar="ESTROM_X=VALUE",
        help="an extra beater setting, e.g. ESTROM_BATCH_SIZE=500 (repeatable)",
    )
    p.add_argument("--no-fanout", action="store_true", help="skip section 4")
    p.add_argument(
        "--register-budget",
        type=float,
        help="seconds of registration over WAMP per N before the rest is seeded (default 30, quick 10)",
    )
    p.add_argument(
        "--engine-nodes",
        type=int,
        default=1,
        help="engine nodes: >1 starts a cluster on loopback, percolator index SHARDS=NODES, 1 replica",
    )
    p.add_argument(
        "--sweep-interval",
        type=float,
        help="the beater's ESTROM_QUERY_SWEEP_INTERVAL (default 10, quick 5: section 5 waits on sweeps; "
        "the services' own default is 30)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    cfg = p.parse_args(argv)
    for item in cfg.beater_env:
        if not item.startswith("ESTROM_") or "=" not in item:
            p.error(f"--beater-env wants ESTROM_NAME=VALUE, got {item!r}")
    cfg.started = time.perf_counter()
    quick = cfg.quick
    cfg.run_s = 6.0 if quick else 20.0
    cfg.ceiling_s = 5.0 if quick else 15.0
    cfg.router_s = 5.0 if quick else 10.0
    cfg.warmup_s = 4.0 if quick else 15.0  # ingest through the beater, then raw percolate until it settles
    cfg.warmup_max_s = 30.0 if quick else 300.0
    if cfg.register_budget is None:
        cfg.register_budget = 10.0 if quick else 30.0
    if cfg.sweep_interval is None:
        cfg.sweep_interval = 5.0 if quick else 10.0
    cfg.fanout_timeout = 240 if quick else 420
    cfg.queries = [int(n) for n in (cfg.queries or ("100,1000" if quick else "100,1000,10000")).split(",")]
    if cfg.json is None:
        cfg.json = Path(tempfile.gettempdir()) / f"estrom-bench-compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    if cfg.out is None and not quick:
        cfg.out = REPO / "bench" / f"results-compare-{time.strftime('%Y-%m-%d')}.txt"
    return cfg


def run(cfg: argparse.Namespace, workdir: Path) -> None:
    """Start the stack, run sections 1-3 and 5, stop it, run section 4; print and write the figures."""
    settings = {"ESTROM_QUERY_SWEEP_INTERVAL": str(cfg.sweep_interval)}
    heap = "1g"
    if cfg.engine_nodes > 1:
        # Every node holds a primary and a replica; the heap of the three fits beside one node's.
        settings |= {"ESTROM_QUERY_INDEX_SHARDS": str(cfg.engine_nodes), "ESTROM_QUERY_INDEX_REPLICAS": "1"}
        heap = "512m"
    settings |= dict(item.split("=", 1) for item in cfg.beater_env)
    with (
        bench_stack(
            workdir, tailors=1, beater_settings=settings, heap=heap, engine_nodes=cfg.engine_nodes
        ) as (stack, _anonymous),
        contextlib.ExitStack() as cleanup,
    ):
        # Subscribed before registered (no sweep may deactivate a query in between): the readers
        # gate refuses an anonymous subscription to a sid it cannot describe yet, so the
        # benchmark's subscribers and registrations use the tailor's principal, as the tailor does.
        wamp = stack.client("tailor")
        cleanup.callback(wamp.close)
        trees = process_trees(stack)
        probe = Probe(trees | {"client": [os.getpid()]})
        cleanup.callback(probe.stop)
        es = sync_client(stack.engine.url, timeout=120, maxsize=cfg.senders + 4)
        b = Bench(cfg, stack, wamp, es, probe, base_docs(20_000))
        log(f"quick={cfg.quick}; N {cfg.queries}, B={cfg.batch}, C={cfg.senders}, run {cfg.run_s:.0f}s")
        warm_up(b)
        router_ceiling(b)
        largest = max(cfg.queries)
        kept = None
        for n in cfg.queries:
            got = measure_queries(b, n, keep_for_scaling=n == largest and n > ACTIVE_FEW)
            if n == largest and n > ACTIVE_FEW:
                kept = got
        base = find(b.runs, "e2e-max", ACTIVE_FEW)
        if kept is not None and base is not None:
            query_scaling(b, *kept, base=base)
        log("stopping the stack")
    fan = None if cfg.no_fanout else fanout(cfg)
    target = 1000 if 1000 in cfg.queries else largest
    goal_list = goals(b.runs, fan, target)
    emit(report(b, fan, goal_list, cfg.started), cfg.out)
    results = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "machine": {"cores": os.cpu_count()},
        "runs": [
            asdict(r) | {"ratio": r.ratio, "stack_us_per_doc": r.stack_us_per_doc, "cpu_ratio": r.cpu_ratio}
            for r in b.runs
        ],
        "registration": b.registration,
        "fanout": fan,
        "goals": goal_list,
    }
    cfg.json.write_text(json.dumps(results, indent=1))
    log(f"figures written to {cfg.json}")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    return run_in_workdir("compare", lambda workdir: run(cfg, workdir), cfg.keep)


if __name__ == "__main__":
    sys.exit(main())
