"""``python -m bench.bulk_write``: the options, the stack, the modes prepared, sent, reported, removed."""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path

import bench.bulk_write
from bench.bulk_write.big_bulk import big_bulk
from bench.bulk_write.blocks import send_blocks
from bench.bulk_write.engine_api import engine_name
from bench.bulk_write.meters import CpuMeter
from bench.bulk_write.modes import MODES, prepare, tear_down
from bench.bulk_write.report import print_modes
from bench.harness import bench_env
from bench.measure import process_tree
from devstack.stack import Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bulk_write", description=(bench.bulk_write.__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--engine-url", default="", help="an engine running elsewhere (default: start one)")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)} (default: all)"
    )
    parser.add_argument("--requests", type=int, default=40, help="bulk requests per side and mode")
    parser.add_argument("--docs", type=int, default=500, help="documents per bulk request")
    parser.add_argument(
        "--block", type=int, default=10, help="requests per side in a row before the other side's turn"
    )
    parser.add_argument(
        "--no-drain", action="store_true", help="no wait for the beater's queue after each block through"
    )
    parser.add_argument("--big-mb", type=int, default=0, help="size of one large bulk through (0: none)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        parser.error(f"--modes takes {', '.join(MODES)}, not {args.modes!r}")
    if args.requests % args.block:
        parser.error("--requests must be a multiple of --block")

    work = Path(tempfile.mkdtemp(prefix="estrom-bench-bulk-"))
    work.chmod(0o755)
    engines = [args.engine_url] if args.engine_url else []
    settings = {"ESTROM_ENGINE_TIMEOUT": "60"}
    with Stack(work, env=bench_env(), engine_urls=engines, settings=settings) as stack:
        stack.up(beaters=1, tailors=1)
        trees = {
            "beater": process_tree(stack.beater.pid),
            "router": process_tree(stack.router.pid),
            "tailor": process_tree(stack.tailor.pid),
        }
        if stack.engine.nodes:  # not one running elsewhere
            trees["engine"] = [
                p for n in stack.engine.nodes if n.process for p in process_tree(n.process.pid)
            ]
        return run(args, modes, stack.engine.url, stack.beater.url, stack.tailor.url, CpuMeter(trees))


def run(
    args: argparse.Namespace,
    modes: list[str],
    engine_url: str,
    beater_url: str,
    tailor_url: str,
    cpu: CpuMeter,
) -> int:
    """Prepare the modes, send every block, print the figures, then remove what the run created."""
    tag = uuid.uuid4().hex[:8]
    wait = "no wait" if args.no_drain else "then a wait for the beater's queue to empty"
    print(
        f"engine {engine_name(engine_url)}; {args.requests} requests of {args.docs} documents per side and"
        f" mode, {args.block} in a row per side ({wait}), modes interleaved;"
        f" load average {os.getloadavg()[0]:.1f} at the start"
    )
    all_modes, pipeline = prepare(modes, engine_url, beater_url, tailor_url, tag, args.docs)
    active = [m for m in all_modes if not m.skipped]
    read_before, read_after = send_blocks(args, active, beater_url, cpu)
    print_modes(args, all_modes, engine_url, read_before, read_after)
    if args.big_mb:
        big_bulk(args, beater_url, active[0].through_index if active else f"bench-bulk-big-{tag}")
    tear_down(active, engine_url, beater_url, pipeline)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
