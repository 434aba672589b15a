"""Sending: each mode in turn, a block of bulks direct, then one through, until every request is sent.

Blocks close together in time let both sides see the same machine; the wait
for the beater's queue after a block through charges estrom's percolation
to the side that caused it (unless ``--no-drain``).
"""

from __future__ import annotations

import argparse
import time

from bench.bulk_write.meters import CpuMeter, QueueWatch, percolate_metrics, read_back_metrics
from bench.bulk_write.modes import Mode

ReadBack = tuple[float, float, float]


def send_blocks(
    args: argparse.Namespace, active: list[Mode], beater_url: str, cpu: CpuMeter
) -> tuple[ReadBack, ReadBack]:
    """Every block of every mode, then a bounded wait for the tails' hits; returns the beater's
    read-back metrics before and after (``read_back_metrics``)."""
    queue = QueueWatch(beater_url)
    queue.drain()
    read_before = read_back_metrics(beater_url)
    for r in range(args.requests // args.block):
        for mode in active:
            for side in ("direct", "through"):
                percolated = percolate_metrics(beater_url) if side == "through" else (0.0, 0.0)
                before = cpu.now()
                for b in range(args.block):
                    mode.send(side, (r * args.block + b) * args.docs, args.docs)
                if side == "through" and not args.no_drain:
                    # The next block direct runs on an engine and a machine free of estrom's work.
                    mode.drains.append(queue.drain())
                cpu.add(mode.cpu[side], before, cpu.now())
                if side == "through":
                    after = percolate_metrics(beater_url)
                    mode.percolate = [
                        m + a - b for m, a, b in zip(mode.percolate, after, percolated, strict=True)
                    ]
    read_after = read_back_metrics(beater_url)
    deadline = time.monotonic() + 120
    while any(m.tail.hits < m.expected for m in active) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # late duplicates, if any, would show as more than expected
    return read_before, read_after
