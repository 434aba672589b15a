"""``python -m bench.query_gc``: the options, the stack, the steps in order, the figures written."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path

import bench.query_gc
from bench.harness import bench_stack, emit, run_in_workdir
from bench.query_gc.experiment import Bench, run_baseline, run_experiment, warm_up
from bench.query_gc.load import Load
from bench.query_gc.log_data import LogData, request_bodies
from bench.query_gc.queries import HitCounter, hold_sweeps
from bench.query_gc.report import report
from bench.query_gc.timeline import Timeline
from common.engine import sync_client
from devstack.router import REPO

warnings.filterwarnings("ignore")  # "security not enabled" deprecation headers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.query_gc", description=(bench.query_gc.__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="1,000 abandoned queries, shorter phases, < 2 min")
    p.add_argument("--grace", type=float, help="ESTROM_QUERY_GRACE, s (default 20; quick 6)")
    p.add_argument("--interval", type=float, default=2.0, help="ESTROM_QUERY_SWEEP_INTERVAL, s")
    p.add_argument("--abandoned", type=int, help="abandoned queries (default 10000; quick 1000)")
    p.add_argument("--live", type=int, default=100, help="live (subscribed) queries")
    p.add_argument(
        "--rpc-abandoned",
        type=int,
        help="abandoned queries registered over WAMP, the rest written into the engine (default 200; quick 20)",
    )
    p.add_argument("--all-over-wamp", action="store_true", help="register every abandoned query over WAMP")
    p.add_argument("--senders", type=int, default=2, help="concurrent HTTP senders")
    p.add_argument("--docs-per-request", type=int, default=250)
    p.add_argument("--step", type=float, default=2.0, help="timeline window, s")
    p.add_argument("--heap", default="1g", help="engine heap")
    p.add_argument(
        "--beater-log-level", default="info", help="ESTROM_LOG_LEVEL of the beater (debug: sweeps)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    p.add_argument("--out", type=Path, help="also write the figures here (default for a full run: bench/)")
    cfg = p.parse_args(argv)
    quick = cfg.quick
    cfg.grace = cfg.grace if cfg.grace is not None else (6.0 if quick else 20.0)
    cfg.abandoned = cfg.abandoned if cfg.abandoned is not None else (1000 if quick else 10_000)
    cfg.rpc_abandoned = cfg.rpc_abandoned if cfg.rpc_abandoned is not None else (20 if quick else 200)
    cfg.rpc_abandoned = cfg.abandoned if cfg.all_over_wamp else min(cfg.rpc_abandoned, cfg.abandoned)
    cfg.warmup, cfg.warmup_requests = (3.0, 6) if quick else (15.0, 20)
    cfg.baseline_seconds = 4.0 if quick else 20.0
    cfg.active_seconds = 6.0 if quick else 20.0
    cfg.after_seconds = 4.0 if quick else 20.0
    cfg.timeout = 30.0 if quick else 90.0  # beyond 2 sweeps + grace, before giving up on collection
    cfg.register_batch, cfg.register_concurrency = 250, 16
    if cfg.out is None and not quick:
        cfg.out = REPO / "bench" / f"results-query-gc-{time.strftime('%Y-%m-%d')}.txt"
    return cfg


def run(cfg: argparse.Namespace, workdir: Path, started: float) -> None:
    """Start the stack, run everything, print the figures; tear it all down whatever happens."""
    settings = {
        "ESTROM_QUERY_GRACE": f"{cfg.grace:g}",
        "ESTROM_QUERY_SWEEP_INTERVAL": f"{cfg.interval:g}",
        "ESTROM_LOG_LEVEL": cfg.beater_log_level,
    }
    with (
        bench_stack(workdir, beater_settings=settings, heap=cfg.heap) as (stack, client),
        contextlib.ExitStack() as cleanup,
    ):
        # client: anonymous, register_query and subscribe suffice. Browsers may
        # subscribe exact only: the prefix hold is the tailor principal's.
        holder = stack.client("tailor")
        cleanup.callback(holder.close)
        data = LogData()
        load = Load(
            stack.beater.url,
            request_bodies(data.docs(20_000), cfg.docs_per_request),
            cfg.docs_per_request,
            cfg.senders,
        )
        cleanup.callback(load.stop)
        es = sync_client(stack.engine.url, timeout=60)
        counter = HitCounter()
        timeline = Timeline(stack, es, load, counter, cfg.step)
        b = Bench(stack, client, es, data, load, timeline, counter, cfg)
        base, main = f"gc-base-{b.run_id}", f"gc-{b.run_id}"
        hold = hold_sweeps(holder)  # until the experiment: nothing registered here is swept early
        b.live_queries(base)
        warm_up(b, base)
        run_baseline(b, base, "before", cfg.baseline_seconds)
        b.abandoned_queries(main, b.live_queries(main))
        run_experiment(b, main, hold)
        run_baseline(b, base, "after", cfg.baseline_seconds)
        emit(report(b, started), cfg.out)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    started = time.perf_counter()
    return run_in_workdir("gc", lambda workdir: run(cfg, workdir, started), cfg.keep)


if __name__ == "__main__":
    sys.exit(main())
