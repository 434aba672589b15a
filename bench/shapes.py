"""Tail shapes: the tailor's CPU per hit delivered and memory per held hit, for fields=, delay= and max_rate=.

Why this exists
---------------
A tail may ask for its hits shaped: ``fields=`` cuts each ``_source``,
``delay=`` holds the hits and releases them in ``@timestamp`` order (both in
a view shared by every tail of one sid and shape, tailor/views/view.py),
``max_rate=`` samples each tail's hits (tailor/views/sampling.py). What each
costs the tailor, next to a plain tail, decides what a shaped tail may be
offered for.

On real processes it starts itself (engine, router, beater, tailor on free
loopback ports), registers one query that every document matches, and
ingests at a steady rate (500 documents/s, JSON arrays of 50, through the
beater, devstack/sender.py paced) for the whole run: one stack, one stream.
Meanwhile each shape in turn: (a) plain, (b) ``delay=5s``, (c)
``max_rate=50``, (d) ``fields=@timestamp,swarm_seq``, (e) all three
together. For each, it opens N tails (50) of the shape on the sid (bench/tail_swarm.py),
lets them settle (the delay, plus 3 s), then measures over a window (30 s;
``--quick`` 10 s): the tailor's CPU seconds from /proc (bench/measure.py),
the hits it framed for the tails (``hits_sent_total``) and left out by
sampling (``sampled_out_total``), the tails' own count, and every 1.3 s the
tailor's RSS and its gauges ``view_held_hits`` and ``view_held_bytes``.
Then it closes the tails and goes on to the next shape.

CPU per hit is the tailor's CPU over the window divided by the hits
delivered to tails in it, and (for sampling) by the hits offered to tails
(delivered + sampled out). Memory per held hit is the tailor's median RSS
with the ``delay=5s`` tails less that with the plain ones, over the most
hits held (RSS keeps its high-water mark). The engine's and beater's CPU per document ingested are printed
beside, for context.

The tailor runs with ``ESTROM_TAILOR_MAX_PENDING`` at 8 MiB (default 1 MiB)
so that a view holds its full 5 s whatever the hits' size (2,500 hits of ~330
bytes are 0.8 MiB, near the default bound); early releases are counted.

Everything shares this machine's cores (2 on the development box, other work
running): figures are for comparison within a run. Nothing is asserted.

Usage::

    scripts/bench shapes [--quick] [--tails N] [--rate R] [--max-rate K] [--seconds S] [--json PATH]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import (
    bench_main,
    bench_parser,
    bench_stack,
    emit_figures,
    load_note,
    log,
    process_trees,
)
from bench.measure import cpu_seconds, machine_busy_seconds, proc_status_kib, thread_cpu_seconds
from bench.tail_client import SEQ_FIELD, Reader
from bench.tail_swarm import Swarm, log_lines, tailor_metrics
from devstack.sender import Sender
from devstack.stack import Stack

REPO = Path(__file__).resolve().parent.parent
QUERY = "service:swarm AND level:error"
BATCH = 50  # documents per POST
PAD = 120  # message padding: hits of ~330 bytes as the tailor encodes them
DELAY = "5s"
#: Two fields: the order field, so that ``delay=`` still orders the cut hits (without it they have no
#: value and go in arrival order), and the sequence number, so that the tails count what they get.
FIELDS = f"@timestamp,{SEQ_FIELD}"
MAX_PENDING = 8 * 1024 * 1024
#: seconds between samples of RSS and the view gauges: not a whole second, so that the samples fall
#: all over the held count's one-second sawtooth (@timestamp has whole seconds); a scrape costs the
#: tailor about 1 ms of CPU
SAMPLE_EVERY = 1.3


def shapes(max_rate: int) -> list[tuple[str, str, float]]:
    """(name, the tail's extra query arguments, seconds its view holds hits), in the order measured."""
    return [
        ("plain", "", 0.0),
        (f"delay={DELAY}", f"&delay={DELAY}", 5.0),
        (f"max_rate={max_rate}", f"&max_rate={max_rate}", 0.0),
        ("fields=2", f"&fields={FIELDS}", 0.0),
        ("all three", f"&fields={FIELDS}&delay={DELAY}&max_rate={max_rate}", 5.0),
    ]


@dataclass
class Phase:
    """One shape's window: what was ingested, delivered and spent."""

    shape: str
    args: str
    tails: int
    opened: int = 0
    connect_s: float = 0.0
    seconds: float = 0.0
    docs: int = 0
    hits_sent: float = 0.0
    sampled_out: float = 0.0
    client_hits: int = 0
    late: float = 0.0
    early: float = 0.0
    deliveries: float = 0.0  # delivery_seconds_count: per event and listener of the subscription
    cpu_s: dict[str, float] = field(default_factory=dict)
    rss_before_kib: int = 0
    rss_kib: list[int] = field(default_factory=list)
    held: list[float] = field(default_factory=list)
    held_bytes: list[float] = field(default_factory=list)
    loop_s: float = 0.0
    client_s: float = 0.0

    def per_s(self, n: float) -> float:
        return n / self.seconds if self.seconds else 0.0

    def us_per(self, n: float, who: str = "tailor") -> float:
        return 1e6 * self.cpu_s.get(who, 0.0) / n if n else 0.0

    def pct(self, who: str) -> float:
        return 100 * self.cpu_s.get(who, 0.0) / self.seconds if self.seconds else 0.0

    @property
    def rss_mib(self) -> float:
        return statistics.median(self.rss_kib) / 1024 if self.rss_kib else 0.0

    @property
    def held_mean(self) -> float:
        return statistics.fmean(self.held) if self.held else 0.0

    @property
    def held_peak(self) -> float:
        return max(self.held, default=0.0)

    @property
    def held_bytes_mean(self) -> float:
        return statistics.fmean(self.held_bytes) if self.held_bytes else 0.0


def counter(metrics: dict[str, float], name: str) -> float:
    """The sum of a counter's samples, whatever their labels."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def measure_shape(stack: Stack, sid: str, sender: Sender, phase: Phase, hold: float, cfg: Any) -> Phase:
    tailor = stack.tailor.pid
    phase.rss_before_kib = proc_status_kib(tailor, "VmRSS")
    swarm = Swarm(stack.tailor.host, stack.tailor.port)
    try:
        phase.connect_s = swarm.open(
            f"/api/v0.1/docs?s={sid}{phase.args}", [Reader()] * phase.tails, sender.next_number, timeout=60
        )
        phase.opened = sum(1 for s in swarm.stats() if s.started)
        refused = [s for s in swarm.stats() if s.refusal]
        if refused:
            log(f"!!! {len(refused)} tails refused, e.g. {refused[0].refusal!r}")
        log(f"{phase.shape}: {phase.opened}/{phase.tails} tails started in {phase.connect_s:.1f}s")
        time.sleep(hold + cfg.settle)  # the view's buffer fills for the delay; then it is steady
        trees = process_trees(stack)
        trees["client"] = [os.getpid()]
        m0 = tailor_metrics(stack.tailor.url)
        docs0, hits0 = sender.stats.docs, sum(swarm.counts())
        cpu0 = {n: cpu_seconds(p) for n, p in trees.items()}
        busy0 = machine_busy_seconds()
        loop0 = thread_cpu_seconds(swarm.thread_id)
        t0 = time.perf_counter()
        deadline = t0 + cfg.seconds
        while (now := time.perf_counter()) < deadline:
            time.sleep(min(SAMPLE_EVERY, deadline - now))  # the sampling period
            phase.rss_kib.append(proc_status_kib(tailor, "VmRSS"))
            gauges = tailor_metrics(stack.tailor.url)
            phase.held.append(gauges.get("view_held_hits", 0.0))
            phase.held_bytes.append(gauges.get("view_held_bytes", 0.0))
        phase.seconds = time.perf_counter() - t0
        phase.cpu_s = {n: cpu_seconds(p) - cpu0[n] for n, p in trees.items()}
        phase.cpu_s["other"] = machine_busy_seconds() - busy0 - sum(phase.cpu_s.values())
        phase.loop_s = thread_cpu_seconds(swarm.thread_id) - loop0
        phase.docs = sender.stats.docs - docs0
        phase.client_hits = sum(swarm.counts()) - hits0
        m1 = tailor_metrics(stack.tailor.url)
    finally:
        swarm.stop()
    for name, attr in (
        ("hits_sent_total", "hits_sent"),
        ("sampled_out_total", "sampled_out"),
        ("late_hits_total", "late"),
        ("view_early_releases_total", "early"),
        ("delivery_seconds_count", "deliveries"),
    ):
        setattr(phase, attr, counter(m1, name) - counter(m0, name))
    time.sleep(cfg.settle)  # the tails gone, the view and its held hits let go
    return phase


CPU_HEAD = (
    f"{'shape':<14} {'tails':>5} {'docs/s':>6} {'per tail/s':>10} {'deliv/s':>7} {'offered/s':>9} "
    f"{'tailor%':>7} {'us/deliv':>8} {'us/offer':>8} {'client%':>7} {'loop%':>5} "
    f"{'beater us/doc':>13} {'engine us/doc':>13} {'router%':>7} {'other%':>6}"
)
MEM_HEAD = (
    f"{'shape':<14} {'held hits':>9} {'peak':>5} {'held KiB':>8} {'B/held (enc)':>12} {'RSS MiB':>7} "
    f"{'dRSS vs plain':>13} {'RSS B/held':>10} {'late':>5} {'early':>5}"
)


def cpu_row(p: Phase) -> str:
    offered = p.hits_sent + p.sampled_out
    return (
        f"{p.shape:<14} {f'{p.opened}/{p.tails}':>5} {p.per_s(p.docs):>6.0f} "
        f"{p.per_s(p.client_hits) / max(p.opened, 1):>10.1f} {p.per_s(p.hits_sent):>7.0f} "
        f"{p.per_s(offered):>9.0f} {p.pct('tailor'):>7.1f} {p.us_per(p.hits_sent):>8.1f} "
        f"{p.us_per(offered):>8.1f} {p.pct('client'):>7.0f} {100 * p.loop_s / p.seconds:>5.0f} "
        f"{p.us_per(p.docs, 'beater'):>13.0f} {p.us_per(p.docs, 'engine'):>13.0f} "
        f"{p.pct('router'):>7.0f} {p.pct('other'):>6.0f}"
    )


def mem_row(p: Phase, plain: Phase, clean: bool) -> str:
    d_mib = p.rss_mib - plain.rss_mib
    held = p.held_mean
    enc = p.held_bytes_mean / held if held else 0.0
    rss_per = f"{d_mib * 1024 * 1024 / p.held_peak:.0f}" if clean and p.held_peak >= 1 else "-"
    return (
        f"{p.shape:<14} {held:>9.0f} {p.held_peak:>5.0f} {p.held_bytes_mean / 1024:>8.0f} {enc:>12.0f} {p.rss_mib:>7.1f} "
        f"{d_mib:>+13.2f} {rss_per:>10} {p.late:>5.0f} {p.early:>5.0f}"
    )


LEGEND = """\
docs/s        documents accepted by the beater per second in the window (every one matches: hits/s per tail offered)
per tail/s    hits each tail received per second (counted by the tails, distinct sequence numbers)
deliv/s       hits the tailor framed for all tails per second (hits_sent_total)
offered/s     hits that reached the tails before sampling: deliv/s + sampled_out_total/s
tailor%       tailor CPU over the window, % of one core; us/deliv, us/offer: per delivered, per offered hit
client%       this process (tails, sender, scrapes); loop%: the tails' event loop alone (near 100: client-bound)
beater, engine  CPU us per document ingested (context: the same stream for every shape)
router%       the router's CPU; other%: the rest of the machine (others' work), % of one core (200 = 2 cores)
held hits     view_held_hits, mean of the window's samples, and their peak; held KiB: view_held_bytes (hits
              as encoded JSON). @timestamp has whole seconds: a hit's release takes every held hit of
              its second along, so the count saws between 4 and 5 seconds' worth
B/held (enc)  encoded bytes per held hit; RSS MiB: the tailor's median VmRSS over the window
dRSS vs plain RSS less the plain shape's; RSS B/held: that over the peak held (RSS keeps its high-water
              mark while the count saws), for the first delay shape only (measured right after
              plain): later rows carry what earlier shapes left in the tailor's allocator, which
              they partly reuse, so their RSS is not theirs alone
late, early   hits released after a greater @timestamp (marked _late); released early over the bound"""


def report(phases: list[Phase], cfg: Any, started: float) -> tuple[str, dict[str, Any]]:
    plain = phases[0]
    held = next((p for p in phases if p.held_mean >= 1), None)
    lines = [load_note(), "", CPU_HEAD, "-" * len(CPU_HEAD), *map(cpu_row, phases), ""]
    lines += [MEM_HEAD, "-" * len(MEM_HEAD), *(mem_row(p, plain, p is held) for p in phases), ""]
    figures: dict[str, Any] = {"phases": [asdict(p) for p in phases], "shapes": {}}
    for p in phases:
        cost = p.us_per(p.hits_sent)
        figures["shapes"][p.shape] = {
            "tailor_us_per_delivered_hit": round(cost, 2),
            "tailor_us_per_offered_hit": round(p.us_per(p.hits_sent + p.sampled_out), 2),
            "x_plain": round(cost / plain.us_per(plain.hits_sent), 2) if plain.hits_sent else None,
        }
        lines.append(
            f"{p.shape:<14} tailor {cost:6.1f} us per delivered hit = "
            f"{figures['shapes'][p.shape]['x_plain']} x plain"
        )
    events = plain.deliveries / max(plain.opened, 1)
    figures["hits_per_event"] = round(plain.docs / events, 1) if events else None
    lines.append(
        f"hits per router event: {figures['hits_per_event']} (plain: delivery_seconds_count / tails); "
        "the tailor's cost is mostly per event and tail, so per hit it scales with this"
    )
    if held is not None:
        per_hit = (held.rss_mib - plain.rss_mib) * 1024 * 1024 / held.held_peak
        figures["rss_bytes_per_held_hit"] = round(per_hit)
        figures["encoded_bytes_per_held_hit"] = round(held.held_bytes_mean / held.held_mean)
        lines.append(
            f"memory per held hit ({held.shape} less plain): {per_hit:,.0f} bytes of RSS for up to "
            f"{held.held_peak:,.0f} held hits (mean {held.held_mean:,.0f}) of "
            f"{held.held_bytes_mean / held.held_mean:.0f} encoded bytes"
        )
    lines += [
        "",
        LEGEND,
        "",
        f"one query, every document matches; {cfg.rate:.0f} docs/s in arrays of {BATCH}, one stream for "
        f"all shapes; {cfg.tails} tails per shape on one sid; settle {cfg.settle:.0f}s (+ the delay), "
        f"window {cfg.seconds:.0f}s; tailor ESTROM_TAILOR_MAX_PENDING={MAX_PENDING // 1024} KiB; "
        f"machine: {os.cpu_count()} cores; total wall time {time.perf_counter() - started:.0f}s",
    ]
    return "\n".join(lines), figures


def parse_args(argv: list[str] | None = None) -> Any:
    p = bench_parser(__doc__ or "")
    p.add_argument("--quick", action="store_true", help="10 s windows, 5 s warm-up (under 2 minutes)")
    p.add_argument("--tails", type=int, default=50, help="tails of each shape (default 50)")
    p.add_argument("--rate", type=float, default=500.0, help="documents (= hits per tail) per second")
    p.add_argument("--max-rate", type=int, default=50, help="the max_rate= of the sampled shapes")
    p.add_argument("--seconds", type=float, help="window per shape (default 30; --quick 10)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    cfg = p.parse_args(argv)
    if cfg.seconds is None:
        cfg.seconds = 10.0 if cfg.quick else 30.0
    cfg.warmup = 5.0 if cfg.quick else 15.0
    cfg.settle = 3.0
    if cfg.out is None and not cfg.quick:
        cfg.out = REPO / "bench" / f"results-shapes-{time.strftime('%Y-%m-%d')}.txt"
    return cfg


def run(cfg: Any, workdir: Path, started: float) -> None:
    tailor_settings = {"ESTROM_TAILOR_MAX_PENDING": str(MAX_PENDING)}
    with bench_stack(workdir, tailors=1, tailor_settings=tailor_settings) as (stack, wamp):
        index = f"shapes-{uuid.uuid4().hex[:8]}"
        sid = wamp.call("com.estrom.register_query", index, QUERY)
        sender = Sender(stack.beater.url, index, log_lines(PAD), docs_per_batch=BATCH)
        plan = shapes(cfg.max_rate)
        total = cfg.warmup + sum(hold + 2 * cfg.settle + cfg.seconds + 10 for _, _, hold in plan) + 120
        log(f"sid {sid} ({index}: {QUERY}); {cfg.rate:.0f} docs/s for the whole run (at most {total:.0f}s)")
        sender.start_paced(cfg.rate, total)
        try:
            time.sleep(cfg.warmup)  # a fresh index's first documents are slow (mappings, cold caches)
            log(f"warm-up: {sender.stats.docs} docs in {cfg.warmup:.0f}s")
            phases = []
            for name, args, hold in plan:
                phase = measure_shape(stack, sid, sender, Phase(name, args, cfg.tails), hold, cfg)
                phases.append(phase)
                log(
                    f"{name}: {phase.per_s(phase.hits_sent):.0f} hits/s delivered, tailor "
                    f"{phase.pct('tailor'):.0f}% = {phase.us_per(phase.hits_sent):.1f} us/hit, "
                    f"held {phase.held_mean:.0f}, RSS {phase.rss_mib:.1f} MiB"
                )
        finally:
            sent = sender.stop(120)
        log(f"ingest: {sent.docs} docs accepted, {sent.retried} retried, {sent.late} late batches")
        text, figures = report(phases, cfg, started)
        text += f"\ningest: {sent.docs} docs accepted, retried {sent.retried}, late batches {sent.late}"
        emit_figures(text, cfg.out, cfg.json, figures)


def main(argv: list[str] | None = None) -> int:
    return bench_main("shapes", argv, parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
