"""The bulk benchmark's printed figures: per mode, each side's throughput, latency and costs; a summary."""

from __future__ import annotations

import argparse
import os
import statistics

from bench.bulk_write.engine_api import refresh_count
from bench.bulk_write.meters import PARTS
from bench.bulk_write.modes import Mode


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_modes(
    args: argparse.Namespace,
    all_modes: list[Mode],
    engine_url: str,
    read_before: tuple[float, float, float],
    read_after: tuple[float, float, float],
) -> None:
    """Per mode, each side's figures and what estrom adds; then one summary line per mode."""
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    docs = args.requests * args.docs
    summary = []
    for mode in all_modes:
        print()
        path = "/_bulk" + (f"?{mode.query}" if mode.query else "")
        if mode.skipped:
            print(f"mode {mode.name}: skipped: {mode.skipped}")
            summary.append(f"  {mode.name:8}  skipped")
            continue
        print(f"mode {mode.name}: POST {path}")
        lat = mode.latencies
        for side, values in lat.items():
            print(
                f"  {side:8} {docs / sum(values):9.0f} docs/s   p50 {percentile(values, 0.5) * 1000:7.1f} ms"
                f"   p99 {percentile(values, 0.99) * 1000:7.1f} ms"
                f"   answer {statistics.mean(mode.sizes[side]) / 1000:6.1f} kB"
            )
        direct = docs / sum(lat["direct"])
        answered = docs / sum(lat["through"])
        published = docs / (sum(lat["through"]) + sum(mode.drains)) if mode.drains else float("nan")
        if mode.drains:
            print(
                f"  through, published {published:6.0f} docs/s   (the requests, and after each block of"
                f" {args.block} the wait until the beater's queue was empty:"
                f" {statistics.mean(mode.drains) * 1000:.0f} ms on average)"
            )
        ratio_pub = f"{published / direct:.2f}" if mode.drains else "-"
        pub_rate = f"{published:.0f}" if mode.drains else "-"
        print(
            f"  ratio    {answered / direct:.2f} x direct answered, {ratio_pub} x direct published"
            " (goal: 0.8 or more)"
        )
        extra = [t - d for t, d in zip(lat["through"], lat["direct"], strict=True)]
        print(
            f"  extra per request (through - direct, paired): p50 {statistics.median(extra) * 1000:.1f} ms,"
            f" p99 {percentile(extra, 0.99) * 1000:.1f} ms"
        )
        stored = (
            f", {mode.tail.as_stored} as stored (field set, field removed)" if mode.name == "pipeline" else ""
        )
        gaps = f", {mode.tail.gaps} gap(s)" if mode.tail.gaps else ""
        print(
            f"  tail hits received {mode.tail.hits} of {mode.expected} expected{stored}{gaps};"
            f" unpublished (X-Estrom-Unpublished) {mode.unpublished}"
        )
        refreshes = {side: refresh_count(engine_url, index) for side, index in mode.indices().items()}
        print(
            f"  engine refreshes of the index: direct {refreshes['direct']}, through {refreshes['through']}"
        )
        for side in ("direct", "through"):
            parts = [p for p in (*PARTS, "others") if p in mode.cpu[side]]
            print(
                f"  CPU ms per 1000 documents, {side}: "
                + ", ".join(f"{p} {round(mode.cpu[side][p] / docs * 1e6):d}" for p in parts)
            )
        requests, seconds = mode.percolate
        if requests:
            print(
                f"  percolation (beater's percolate_request_seconds): {requests:.0f} requests to the engine,"
                f" {seconds / docs * 1e6:.0f} ms per 1000 documents (their durations summed; several run at once)"
            )
        if mode.name == "pipeline":
            report_read_back(args, mode, all_modes, read_before, read_after)
        summary.append(
            f"  {mode.name:8} {direct:7.0f} {answered:9.0f} {pub_rate:>10}"
            f" {answered / direct:6.2f} {ratio_pub:>6}"
            f" {statistics.median(extra) * 1000:7.1f} {percentile(extra, 0.99) * 1000:7.1f}"
            f"   {mode.tail.hits}/{mode.expected}"
        )
    print()
    print("summary (docs/s; ratios x direct; extra ms per request, through - direct)")
    print("  mode      direct  answered  published  ratio  r.pub  x p50   x p99    hits")
    print("\n".join(summary))


def report_read_back(
    args: argparse.Namespace,
    mode: Mode,
    all_modes: list[Mode],
    before: tuple[float, float, float],
    after: tuple[float, float, float],
) -> None:
    """What the pipeline mode's read-back costs per document, by timing and by the beater's metrics."""
    docs = args.requests * args.docs
    read, seconds, chunks = (a - b for a, b in zip(after, before, strict=True))
    if read:
        print(
            f"  read back (beater's metrics): {read:.0f} documents in {chunks:.0f} _mget,"
            f" {seconds / read * 1e6:.0f} us per document ({seconds / chunks * 1000:.1f} ms per _mget)"
        )
    else:
        print("  read back (beater's metrics): none counted")
    plain = next((m for m in all_modes if m.name == "plain" and not m.skipped), None)
    if plain is None:
        print("  extra per document with the pipeline: needs the plain mode in the same run")
        return
    through = (sum(mode.latencies["through"]) - sum(plain.latencies["through"])) / docs
    net = through - (sum(mode.latencies["direct"]) - sum(plain.latencies["direct"])) / docs
    print(
        f"  extra per document with the pipeline: through {through * 1e6:.0f} us"
        f" (through with pipeline - through plain); estrom's part {net * 1e6:.0f} us"
        " (the same, less direct with pipeline - direct plain: the engine's own pipeline cost)"
    )
