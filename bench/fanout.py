"""Fan-out benchmark: one tailor, 1 / 100 / 1,000 concurrent HTTP tails of one sid.

Why this exists
---------------
A tailor shares one WAMP subscription per sid between all its clients and
frames every hit for each of them (tailor/subscriptions/hub.py,
tailor/tails/stream.py). What that costs per client decides how many tails
one tailor serves. Goal: 1,000 concurrent tails on one tailor, every
hit delivered to every client at 100 hits/s, RSS growth under 50 KiB per idle
client.

On real processes it starts itself (engine, router, beater, tailor on free
loopback ports), it registers one query over WAMP and, for each client count:

1. opens that many ``GET /api/v0.1/docs?s=<sid>`` tails from this process
   (bench/tail_client.py: asyncio, no JSON parsing), each until its stream
   started; the tailor's RSS before and after, with every client idle (no
   hit yet), gives the growth per idle client;
2. ingests at a steady 100 documents/s (JSON arrays of 10 POSTed to the
   beater, devstack/sender.py paced), every document matching the query, for a
   fixed time; then waits (bounded) until every tail has every accepted
   document;
3. reports hits/s sent and delivered (per client: distinct hits over the time
   from the first send to the last hit), completeness (every accepted
   document reached every client, by unique sequence numbers), the tailor's
   CPU per delivered hit and its RSS, and the CPU of this client process (if
   it is near one core, the client is the bottleneck, not the tailor).

Everything shares this machine's cores (2 on the development box, other work
running): figures are for comparison. Nothing is asserted on time.

Usage::

    scripts/bench fanout [--quick] [--json PATH] [--keep] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.harness import bench_main, bench_stack, emit_figures, load_note, log, pids
from bench.measure import (
    Probe,
    cpu_seconds,
    machine_busy_seconds,
    proc_status_kib,
    process_tree,
    thread_cpu_seconds,
)
from bench.tail_client import Reader
from bench.tail_swarm import Swarm, log_lines, summarize, tailor_metrics
from devstack.sender import Sender
from devstack.stack import Stack

QUERY = "service:swarm AND level:error"
RATE = 100.0  # documents (= hits) per second
BATCH = 10  # documents per POST
PAD = 120  # message padding: hits of ~330 bytes on the wire


@dataclass
class FanoutRow:
    """One client count; the first seven keys are what bench/compare/ reads."""

    clients: int
    hits_per_s_sent: float
    hits_per_s_delivered: float
    complete: bool
    tailor_cpu_s_per_hit: float
    tailor_rss_kib: int
    rss_per_idle_client_kib: float
    complete_clients: int = 0
    missing: int = 0
    duplicates: int = 0
    ends: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    retried: int = 0
    deliveries_per_s: float = 0.0
    connect_s: float = 0.0
    tailor_rss_idle_kib: int = 0
    tailor_rss_before_kib: int = 0
    tailor_cpu_pct: float = 0.0
    client_cpu_pct: float = 0.0
    swarm_thread_cpu_pct: float = 0.0
    hits_sent_metric: float = 0.0
    #: the rest of the path, and the whole machine, in % of one core (200 = both of 2 cores)
    router_cpu_pct: float = 0.0
    beater_cpu_pct: float = 0.0
    machine_cpu_pct: float = 0.0


def idle_rss(pid: int) -> int:
    """VmRSS once it stopped moving (allocations of just-opened streams settle within a second)."""
    last = proc_status_kib(pid, "VmRSS")
    for _ in range(10):
        time.sleep(0.5)  # sampling a settling figure, bounded to 5 s
        now = proc_status_kib(pid, "VmRSS")
        if abs(now - last) < 256:
            return now
        last = now
    return last


def run_clients(
    stack: Stack, sid: str, sender: Sender, clients: int, seconds: float, drain: float
) -> FanoutRow:
    tailor = stack.tailor.pid
    rss_before = idle_rss(tailor)
    swarm = Swarm(stack.tailor.host, stack.tailor.port)
    try:
        connect_s = swarm.open(f"/api/v0.1/docs?s={sid}", [Reader()] * clients, base=sender.next_number)
        opened = [s for s in swarm.stats() if s.started]
        log(f"{clients} clients: {len(opened)} streams started in {connect_s:.1f}s")
        rss_idle = idle_rss(tailor)
        metrics0 = tailor_metrics(stack.tailor.url)
        cpu0 = cpu_seconds([tailor])
        others = {n: process_tree(pids(stack)[n]) for n in ("router", "beater")}
        others0 = {n: cpu_seconds(p) for n, p in others.items()}
        busy0 = machine_busy_seconds()
        client0 = cpu_seconds([os.getpid()])
        thread0 = thread_cpu_seconds(swarm.thread_id)
        wall0 = time.perf_counter()
        probe = Probe({"tailor": [tailor]})
        probe.start()
        sent = sender.start_paced(RATE, seconds).join(seconds + 120)
        log(
            f"{clients} clients: {sent.docs} docs accepted in {sent.seconds:.1f}s, "
            f"{sent.retried} retries, {sent.late} late batches; waiting for delivery"
        )
        swarm.wait_for({"fast"}, sent.docs, drain)
        wall = time.perf_counter() - wall0
        cpu = cpu_seconds([tailor]) - cpu0
        other_pct = {n: round(100 * (cpu_seconds(p) - others0[n]) / wall, 1) for n, p in others.items()}
        busy_pct = round(100 * (machine_busy_seconds() - busy0) / wall, 1)
        client = cpu_seconds([os.getpid()]) - client0
        thread = thread_cpu_seconds(swarm.thread_id) - thread0
        probe.stop()
        rss_peak = probe.peaks["tailor"]
        metrics1 = tailor_metrics(stack.tailor.url)
        final = swarm.finish(timeout=5)
    finally:
        swarm.stop()
    summary = summarize(final, sent.acked_numbers).get("fast", {})
    refused = [s for s in final if s.refusal]
    if refused:
        log(f"!!! {len(refused)} tails refused, e.g. {refused[0].refusal.decode(errors='replace')!r}")
    delivered = sum(s.hits + s.duplicates for s in final)
    last_hit = max((s.last_hit_at for s in final), default=0.0)
    window = max(last_hit, sent.end) - sent.start
    send_s = max(sent.seconds, 1e-9)
    return FanoutRow(
        clients=clients,
        hits_per_s_sent=round(sent.docs / send_s, 1),
        hits_per_s_delivered=round(sum(s.hits for s in final) / clients / window, 1) if window > 0 else 0.0,
        complete=summary.get("complete", 0) == clients and len(opened) == clients,
        tailor_cpu_s_per_hit=cpu / delivered if delivered else 0.0,
        tailor_rss_kib=rss_peak,
        rss_per_idle_client_kib=round((rss_idle - rss_before) / clients, 1),
        complete_clients=summary.get("complete", 0),
        missing=summary.get("missing", 0),
        duplicates=summary.get("duplicates", 0),
        ends=summary.get("ends", {}),
        accepted=sent.docs,
        retried=sent.retried,
        deliveries_per_s=round(delivered / window, 1) if window > 0 else 0.0,
        connect_s=round(connect_s, 2),
        tailor_rss_idle_kib=rss_idle,
        tailor_rss_before_kib=rss_before,
        tailor_cpu_pct=round(100 * cpu / wall, 1),
        router_cpu_pct=other_pct["router"],
        beater_cpu_pct=other_pct["beater"],
        machine_cpu_pct=busy_pct,
        client_cpu_pct=round(100 * client / wall, 1),
        swarm_thread_cpu_pct=round(100 * thread / wall, 1),
        hits_sent_metric=metrics1.get("hits_sent_total", 0) - metrics0.get("hits_sent_total", 0),
    )


HEAD = (
    f"{'clients':>7} {'connect s':>9} {'sent/s':>6} {'deliv/s':>7} {'deliveries/s':>12} "
    f"{'complete':>11} {'missing':>8} {'dup':>4} {'tailor CPU%':>11} {'µs/hit':>6} "
    f"{'RSS MiB':>7} {'KiB/idle':>8} {'client CPU%':>11} {'loop%':>5} {'router%':>7} {'box%':>4}"
)


def row_text(r: FanoutRow) -> str:
    return (
        f"{r.clients:>7} {r.connect_s:>9.1f} {r.hits_per_s_sent:>6.1f} {r.hits_per_s_delivered:>7.1f} "
        f"{r.deliveries_per_s:>12.0f} {f'{r.complete_clients}/{r.clients}':>11} {r.missing:>8} "
        f"{r.duplicates:>4} {r.tailor_cpu_pct:>11.0f} {1e6 * r.tailor_cpu_s_per_hit:>6.0f} "
        f"{r.tailor_rss_kib / 1024:>7.1f} {r.rss_per_idle_client_kib:>8.1f} "
        f"{r.client_cpu_pct:>11.0f} {r.swarm_thread_cpu_pct:>5.0f} {r.router_cpu_pct:>7.0f} "
        f"{r.machine_cpu_pct:>4.0f}"
    )


def format_table(rows: list[FanoutRow]) -> str:
    return "\n".join([HEAD, "-" * len(HEAD), *map(row_text, rows)])


LEGEND = """\
connect s     time to open all tails (64 connecting at a time), each until its stream started
sent/s        documents accepted by the beater per second (each is one hit of the query)
deliv/s       per client: distinct hits received / (first send to last hit received)
deliveries/s  all clients together (hit copies written by the tailor and read here)
complete      clients that received every accepted document (by its unique sequence number)
missing, dup  over all clients: accepted documents never received, received twice
tailor CPU%   tailor CPU during ingest + delivery, % of one core; µs/hit: per delivered copy
RSS MiB       tailor peak VmRSS during ingest; KiB/idle: (RSS with N idle tails - RSS before) / N
client CPU%   this process (tails, sender, WAMP); loop%: the tails' event-loop thread alone.
              Near 100 the client, not the tailor, limits deliveries.
router%       the router's processes; box%: the whole machine, everyone's work (200 = 2 cores busy)"""


def goals(rows: list[FanoutRow]) -> list[str]:
    out = []
    big = [r for r in rows if r.clients >= 1000]
    for r in big:
        ok = r.complete and r.hits_per_s_sent >= 0.95 * RATE and r.hits_per_s_delivered >= 0.95 * RATE
        out.append(
            f"goal 1,000 tails, every hit to every client at {RATE:.0f} hits/s: "
            f"{'MET' if ok else 'NOT MET'} ({r.complete_clients}/{r.clients} complete, "
            f"{r.hits_per_s_delivered:.1f} delivered/s per client)"
        )
        out.append(
            f"goal < 50 KiB RSS per idle client: "
            f"{'MET' if r.rss_per_idle_client_kib < 50 else 'NOT MET'} ({r.rss_per_idle_client_kib:.1f} KiB)"
        )
    client_bound = [r.clients for r in rows if r.swarm_thread_cpu_pct > 85]
    if client_bound:
        out.append(f"!!! the client's event loop was near one core at {client_bound} clients: client-bound")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 and 100 clients, shorter ingest (< 90 s)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here (for bench/compare/)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    p.add_argument("--out", type=Path, help="also write the table here")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 100, 1000], help=argparse.SUPPRESS)
    cfg = p.parse_args(argv)
    if cfg.quick and cfg.clients == [1, 100, 1000]:
        cfg.clients = [1, 100]  # opening 1,000 tails alone takes ~2 minutes (see the report)
    cfg.seconds, cfg.drain, cfg.warmup = (8.0, 15.0, 5.0) if cfg.quick else (20.0, 30.0, 10.0)
    return cfg


def run(cfg: argparse.Namespace, workdir: Path, started: float) -> None:
    with bench_stack(workdir, tailors=1) as (stack, wamp):
        index = f"fanout-{uuid.uuid4().hex[:8]}"
        sid = wamp.call("com.estrom.register_query", index, QUERY)
        sender = Sender(stack.beater.url, index, log_lines(PAD), docs_per_batch=BATCH)
        log(f"sid {sid} ({index}: {QUERY}); {RATE:.0f} hits/s for {cfg.seconds:.0f}s per client count")
        # The first documents of a fresh index are slow (mapping updates, cold engine caches).
        warm = sender.start_paced(RATE, cfg.warmup).join(cfg.warmup + 120)
        log(f"warm-up: {warm.docs} docs in {warm.seconds:.0f}s")
        rows: list[FanoutRow] = []
        for clients in cfg.clients:
            rows.append(run_clients(stack, sid, sender, clients, cfg.seconds, cfg.drain))
            r = rows[-1]
            log(
                f"{clients} clients: {r.complete_clients} complete, {r.hits_per_s_delivered} hits/s each, "
                f"tailor {r.tailor_cpu_pct}% CPU, {r.rss_per_idle_client_kib} KiB/idle client"
            )
        text = "\n".join(
            [
                load_note(),
                "",
                format_table(rows),
                "",
                LEGEND,
                "",
                *goals(rows),
                f"{RATE:.0f} docs/s in arrays of {BATCH} for {cfg.seconds:.0f}s per client count; "
                f"one query, every document matches; machine: {os.cpu_count()} cores; "
                f"total wall time {time.perf_counter() - started:.0f}s",
            ]
        )
        emit_figures(text, cfg.out, cfg.json, {"rows": [asdict(r) for r in rows]})


def main(argv: list[str] | None = None) -> int:
    return bench_main("fanout", argv, parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
