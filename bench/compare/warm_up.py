"""Before anything is timed: the engine's JIT and caches settled, so the first N is not measured cold."""

from __future__ import annotations

import time

from bench.compare.ceilings import engine_ceiling
from bench.compare.end_to_end import stream_sender
from bench.compare.queries import subscribe, unsubscribe
from bench.compare.runs import Bench
from bench.harness import log
from bench.receivers import HitLog
from bench.workload import QuerySet, Stream

WARMUP_WINDOW_S = 5.0  # one raw-percolation window of the settling test


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
