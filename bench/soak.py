"""Soak run: minutes of steady ingest with 200 tails, 20 of them slow and 10 stalled.

Why this exists
---------------
A tailor must keep every reader that keeps up complete, drop the ones that
fall too far behind (tailor/tails/stream.py: ``max_pending``) without the
others noticing, and hold its memory flat while doing so; so must the
processes upstream of it. This run shows it in minutes rather than hours.

On real processes it starts itself (engine, router, beater, tailor on free
loopback ports) it registers two queries (every document matches both),
opens 200 tails split over the two sids (bench/tail_swarm.py): 170 fast, 20
slow (reading ``SLOW_RATE`` bytes/s, well under what they are sent) and 10
stalled (never reading after the stream started), then ingests steadily
through the beater like Logstash does (JSON arrays, retries on 429/5xx with
backoff; devstack/sender.py) for the run's length. Every few seconds it
samples RSS and CPU of the engine, router, beater, tailor and this client
process, plus the tailor's /metrics (clients, pending bytes, dropped).

At the end it waits (bounded) for the fast readers, lets the slow and
stalled ones read what is left to see how their streams ended, and prints
the time series and a summary: fast readers complete (no sequence number
missing), slow and stalled dropped (``slow_reader``) and how many, checked
against the tailor's ``clients_dropped_total``, RSS per process after the
warm-up vs at the end (growth is reported against a stated tolerance, not
asserted), and the ingest's accepted and retried counts.

The tailor runs with ``ESTROM_TAILOR_MAX_PENDING`` at 256 KiB (default 1 MiB)
so that readers fall behind the bound within a short run; slow and stalled
readers use a small socket receive buffer for the same reason.

Usage::

    scripts/bench soak [--minutes M] [--quick] [--json PATH] [--keep] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness import bench_main, bench_stack, emit_figures, load_note, log, pids
from bench.measure import cpu_seconds, proc_status_kib, process_tree
from bench.tail_client import Reader, TailStats
from bench.tail_swarm import Swarm, log_lines, summarize, tailor_metrics
from devstack.sender import Sender, SendStats
from devstack.stack import Stack

QUERIES = ("service:swarm", "level:error")
RATE = 60.0  # documents per second; every one is a hit of both queries
BATCH = 25  # documents per POST (Logstash json_batch)
PAD = 2000  # message padding: hits of ~2.2 KB on the wire, ~130 KB/s per tail
SLOW_RATE = 16 * 1024  # bytes/s a slow reader takes (it is sent ~130 KB/s)
MAX_PENDING = 256 * 1024
READERS = [Reader("fast")] * 170 + [Reader("slow", SLOW_RATE)] * 20 + [Reader("stalled")] * 10
PROCESSES = ("engine", "router", "beater", "tailor", "client")
#: RSS growth after the warm-up still called flat (noise of allocators and caches).
FLAT_KIB, FLAT_PCT = 16 * 1024, 10.0


@dataclass
class Sample:
    t: float
    rss_kib: dict[str, int]
    cpu_pct: dict[str, float]
    accepted: int
    clients: float
    pending_kib: float
    dropped: float


class Sampler:
    """RSS and CPU of every process tree, plus the tailor's gauges, on demand."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.trees = {name: process_tree(pid) for name, pid in pids(stack).items()}
        self.trees["client"] = [os.getpid()]
        self.t0 = time.perf_counter()
        self._last = (self.t0, {n: cpu_seconds(p) for n, p in self.trees.items()})
        self.samples: list[Sample] = []

    def sample(self, sent: SendStats) -> Sample:
        now = time.perf_counter()
        cpu = {n: cpu_seconds(p) for n, p in self.trees.items()}
        then, cpu0 = self._last
        self._last = (now, cpu)
        metrics = tailor_metrics(self.stack.tailor.url)
        s = Sample(
            t=round(now - self.t0, 1),
            rss_kib={n: sum(proc_status_kib(p, "VmRSS") for p in pids) for n, pids in self.trees.items()},
            cpu_pct={n: round(100 * (cpu[n] - cpu0[n]) / (now - then), 1) for n in cpu},
            accepted=sent.docs,
            clients=metrics.get("clients", 0),
            pending_kib=metrics.get("pending_bytes", 0) / 1024,
            dropped=dropped_total(metrics),
        )
        self.samples.append(s)
        return s


def dropped_total(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items() if k.startswith("clients_dropped_total"))


def format_series(samples: list[Sample]) -> str:
    head = (
        f"{'t s':>6} {'docs':>6} {'clients':>7} {'pendKiB':>7} {'dropped':>7} | "
        + " ".join(f"{n[:6] + ' MiB':>10}" for n in PROCESSES)
        + " | CPU% "
        + "/".join(n[0] for n in PROCESSES)
    )
    lines = [head, "-" * len(head)]
    for s in samples:
        lines.append(
            f"{s.t:>6.0f} {s.accepted:>6} {s.clients:>7.0f} {s.pending_kib:>7.0f} {s.dropped:>7.0f} | "
            + " ".join(f"{s.rss_kib[n] / 1024:>10.1f}" for n in PROCESSES)
            + " | "
            + "/".join(f"{s.cpu_pct[n]:.0f}" for n in PROCESSES)
        )
    return "\n".join(lines)


def rss_lines(samples: list[Sample]) -> tuple[list[str], dict[str, Any]]:
    """RSS after the warm-up (first quarter of the run) vs at the end, per process."""
    warm = samples[max(1, len(samples) // 4)] if len(samples) > 1 else samples[0]
    last = samples[-1]
    lines, out = [], {}
    for n in PROCESSES:
        a, b = warm.rss_kib[n], last.rss_kib[n]
        growth = b - a
        pct = 100 * growth / a if a else 0.0
        flat = growth <= FLAT_KIB or pct <= FLAT_PCT
        peak = max(s.rss_kib[n] for s in samples)
        out[n] = {"start_kib": a, "end_kib": b, "peak_kib": peak, "growth_kib": growth, "flat": flat}
        lines.append(
            f"  {n:<7} {a / 1024:8.1f} MiB at t={warm.t:.0f}s -> {b / 1024:8.1f} MiB at t={last.t:.0f}s "
            f"({growth / 1024:+.1f} MiB, {pct:+.1f}%; peak {peak / 1024:.1f}) {'flat' if flat else 'GROWING'}"
        )
    return lines, out


def summary(
    final: list[TailStats], sent: SendStats, metrics: dict[str, float], samples: list[Sample]
) -> tuple[str, dict[str, Any]]:
    kinds = summarize(final, sent.acked_numbers)
    # A dropped reader finds the closing ``"error": "slow_reader"`` only if it
    # reaches it within the tailor's close grace; later, the connection is reset.
    with_reason = sum(1 for s in final if s.end == "slow_reader")
    reset = sum(1 for s in final if s.end == "reset" and s.reader.kind != "fast")
    dropped_here = with_reason + reset
    dropped_metric = dropped_total(metrics)
    lines = []
    for kind in ("fast", "slow", "stalled"):
        k = kinds.get(kind)
        if k is None:
            continue
        ends = ", ".join(f"{how} {n}" for how, n in sorted(k["ends"].items()))
        lines.append(
            f"{kind:<8} {k['clients']:>3} clients: {k['complete']:>3} complete, {k['missing']:>7} hits missing, "
            f"{k['duplicates']:>4} duplicates; ended: {ends}"
        )
    fast = kinds.get("fast", {})
    lines.append(
        f"fast readers get everything: {'YES' if fast.get('complete') == fast.get('clients') else 'NO'} "
        f"({fast.get('complete')}/{fast.get('clients')} with no sequence number missing)"
    )
    lines.append(
        f"dropped as slow readers: {dropped_here} seen by the clients ({with_reason} read the closing "
        f'"error": "slow_reader", {reset} were reset first), {dropped_metric:.0f} counted by the tailor '
        f"(clients_dropped_total) {'- agree' if dropped_here == dropped_metric else '- DISAGREE'}"
    )
    retries = ", ".join(f"{k}: {v}" for k, v in sorted(sent.retries.items())) or "none"
    seconds = max(sent.seconds, 1e-9)
    lines.append(
        f"ingest: {sent.docs} docs accepted in {sent.requests} requests ({sent.docs / seconds:.1f}/s), "
        f"retried {sent.retried} ({retries}), failed batches {len(sent.dropped)}, late {sent.late}"
    )
    rss, rss_figures = rss_lines(samples)
    lines.append(f"RSS after warm-up vs end (flat: growth <= {FLAT_KIB // 1024} MiB or <= {FLAT_PCT:.0f}%):")
    lines.extend(rss)
    figures = {
        "readers": kinds,
        "dropped_seen": dropped_here,
        "dropped_with_reason": with_reason,
        "dropped_reset": reset,
        "dropped_metric": dropped_metric,
        "accepted": sent.docs,
        "retried": sent.retried,
        "retries": dict(sent.retries),
        "failed_batches": len(sent.dropped),
        "rss": rss_figures,
    }
    return "\n".join(lines), figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, help="ingest this long (default 3; --quick: 1)")
    p.add_argument("--quick", action="store_true", help="one minute of ingest")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    p.add_argument("--out", type=Path, help="also write the report here")
    cfg = p.parse_args(argv)
    if cfg.minutes is None:
        cfg.minutes = 1.0 if cfg.quick else 3.0
    cfg.every = 3.0 if cfg.minutes <= 1 else 5.0
    return cfg


def run(cfg: argparse.Namespace, workdir: Path, started: float) -> None:
    with (
        bench_stack(workdir, tailors=1, tailor_settings={"ESTROM_TAILOR_MAX_PENDING": str(MAX_PENDING)}) as (
            stack,
            wamp,
        ),
        contextlib.ExitStack() as cleanup,
    ):
        index = f"soak-{uuid.uuid4().hex[:8]}"
        sids = [wamp.call("com.estrom.register_query", index, q) for q in QUERIES]
        sender = Sender(stack.beater.url, index, log_lines(PAD), docs_per_batch=BATCH)
        swarm = Swarm(stack.tailor.host, stack.tailor.port)
        cleanup.callback(swarm.stop)
        # Every kind of reader on every sid.
        for i, sid in enumerate(sids):
            mine = READERS[i :: len(sids)]
            took = swarm.open(f"/api/v0.1/docs?s={sid}", mine, base=sender.next_number)
            log(f"{len(mine)} tails of {sid} started in {took:.1f}s")
        sampler = Sampler(stack)
        seconds = 60 * cfg.minutes
        log(
            f"ingesting {RATE:.0f} docs/s in arrays of {BATCH} for {seconds:.0f}s; sample every {cfg.every:.0f}s"
        )
        sender.start_paced(RATE, seconds)
        sampler.sample(sender.stats)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            time.sleep(min(cfg.every, max(0.0, deadline - time.perf_counter())))  # the sampling period
            s = sampler.sample(sender.stats)
            log(
                f"t={s.t:.0f}s docs {s.accepted}, clients {s.clients:.0f}, dropped {s.dropped:.0f}, "
                f"pending {s.pending_kib:.0f} KiB, tailor {s.rss_kib['tailor'] / 1024:.1f} MiB"
            )
        sent = sender.join(120)
        caught_up = swarm.wait_for({"fast"}, sent.docs, 60)
        sampler.sample(sent)
        log(f"fast readers {'caught up' if caught_up else 'NOT caught up within 60 s'}; draining the others")
        final = swarm.finish(timeout=30)
        metrics = tailor_metrics(stack.tailor.url)
        text, figures = summary(final, sent, metrics, sampler.samples)
        report = "\n".join(
            [
                load_note(),
                "",
                format_series(sampler.samples),
                "",
                text,
                "",
                f"{len(READERS)} tails over {len(sids)} sids ({' | '.join(QUERIES)}); slow readers take "
                f"{SLOW_RATE // 1024} KiB/s; tailor max_pending {MAX_PENDING // 1024} KiB; "
                f"{RATE:.0f} docs/s of ~{PAD + 200} bytes; machine: {os.cpu_count()} cores; "
                f"total wall time {time.perf_counter() - started:.0f}s",
            ]
        )
        emit_figures(report, cfg.out, cfg.json, {**figures, "samples": [asdict(s) for s in sampler.samples]})


def main(argv: list[str] | None = None) -> int:
    return bench_main("soak", argv, parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
