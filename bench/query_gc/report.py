"""The query GC benchmark's printed report: the timeline, the figures by phase, the legend, the notes."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass

from bench.measure import pct
from bench.query_gc.experiment import Bench
from bench.query_gc.timeline import TIMELINE_HEAD, Window, format_row, num

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
            f"{num(pct([d.seconds for d in done], 50), 6, '.0f')} "
            f"{num(pct([d.seconds for d in done], 99), 6, '.0f')} "
            f"{num(pub, 7, '.2f')} {num(live, 8, '.3f')}"
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
