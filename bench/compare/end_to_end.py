"""Sections 3 and 5: estrom end to end, from a Logstash-like sender's POST to WAMP and tail receipt.

Every expected hit is known per sid (``bench/workload.py``), so each run is
checked for what was delivered, not only timed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.compare.ceilings import bracketed, engine_ceiling
from bench.compare.queries import count_active, register, subscribe, unsubscribe, wait_until
from bench.compare.runs import ACTIVE_FEW, DRAIN_S, Bench, Run, cpu_pct, percentiles
from bench.harness import log
from bench.receivers import HitLog, Tails
from bench.workload import QuerySet, Stream
from devstack.sender import Retry, Sender, SendStats
from devstack.wamp_client import on_reactor

ATTEMPTS = 10  # a batch the beater keeps refusing is given up after this many
PACED_WORKERS = 16  # the paced sender's requests in flight at the most


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
