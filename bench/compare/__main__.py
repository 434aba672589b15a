"""``python -m bench.compare``: the options, the stack, the sections in order, the figures written."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import bench.compare
from bench.compare.ceilings import router_ceiling
from bench.compare.end_to_end import measure_queries, query_scaling
from bench.compare.fanout_child import fanout
from bench.compare.report import goals, report
from bench.compare.runs import ACTIVE_FEW, Bench, find
from bench.compare.warm_up import warm_up
from bench.harness import bench_stack, emit, log, process_trees, run_in_workdir
from bench.measure import Probe
from bench.workload import base_docs
from common.engine import sync_client
from devstack.router import REPO

warnings.filterwarnings("ignore")  # "security not enabled" deprecation headers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.compare", description=(bench.compare.__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="smaller N and shorter runs (< ~4 min)")
    p.add_argument("--queries", help="comma-separated N (default 100,1000,10000; quick 100,1000)")
    p.add_argument("--batch", type=int, default=500, help="documents per POST and per percolate (B)")
    p.add_argument("--senders", type=int, default=4, help="requests in flight (C)")
    p.add_argument("--every", type=int, default=10, help="1 in EVERY documents matches a query")
    p.add_argument("--tails", type=int, default=5, help="sids also tailed through the tailor")
    p.add_argument("--json", type=Path, help="write the figures here (default: printed path under /tmp)")
    p.add_argument("--out", type=Path, help="also write the table here (default for a full run: bench/)")
    p.add_argument(
        "--beater-env",
        action="append",
        default=[],
        metavar="ESTROM_X=VALUE",
        help="an extra beater setting, e.g. ESTROM_BATCH_SIZE=500 (repeatable)",
    )
    p.add_argument("--no-fanout", action="store_true", help="skip section 4")
    p.add_argument(
        "--register-budget",
        type=float,
        help="seconds of registration over WAMP per N before the rest is seeded (default 30, quick 10)",
    )
    p.add_argument(
        "--engine-nodes",
        type=int,
        default=1,
        help="engine nodes: >1 starts a cluster on loopback, percolator index SHARDS=NODES, 1 replica",
    )
    p.add_argument(
        "--sweep-interval",
        type=float,
        help="the beater's ESTROM_QUERY_SWEEP_INTERVAL (default 10, quick 5: section 5 waits on sweeps; "
        "the services' own default is 30)",
    )
    p.add_argument(
        "--router-workers",
        type=int,
        default=1,
        help="router nodes, one partition each (ESTROM_ROUTER_WORKERS; the router ceiling is the front's)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    cfg = p.parse_args(argv)
    for item in cfg.beater_env:
        if not item.startswith("ESTROM_") or "=" not in item:
            p.error(f"--beater-env wants ESTROM_NAME=VALUE, got {item!r}")
    cfg.started = time.perf_counter()
    quick = cfg.quick
    cfg.run_s = 6.0 if quick else 20.0
    cfg.ceiling_s = 5.0 if quick else 15.0
    cfg.router_s = 5.0 if quick else 10.0
    cfg.warmup_s = 4.0 if quick else 15.0  # ingest through the beater, then raw percolate until it settles
    cfg.warmup_max_s = 30.0 if quick else 300.0
    if cfg.register_budget is None:
        cfg.register_budget = 10.0 if quick else 30.0
    if cfg.sweep_interval is None:
        cfg.sweep_interval = 5.0 if quick else 10.0
    cfg.fanout_timeout = 240 if quick else 420
    cfg.queries = [int(n) for n in (cfg.queries or ("100,1000" if quick else "100,1000,10000")).split(",")]
    if cfg.json is None:
        cfg.json = Path(tempfile.gettempdir()) / f"estrom-bench-compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    if cfg.out is None and not quick:
        cfg.out = REPO / "bench" / f"results-compare-{time.strftime('%Y-%m-%d')}.txt"
    return cfg


def run(cfg: argparse.Namespace, workdir: Path) -> None:
    """Start the stack, run sections 1-3 and 5, stop it, run section 4; print and write the figures."""
    settings = {"ESTROM_QUERY_SWEEP_INTERVAL": str(cfg.sweep_interval)}
    heap = "1g"
    if cfg.engine_nodes > 1:
        # Every node holds a primary and a replica; the heap of the three fits beside one node's.
        settings |= {"ESTROM_QUERY_INDEX_SHARDS": str(cfg.engine_nodes), "ESTROM_QUERY_INDEX_REPLICAS": "1"}
        heap = "512m"
    settings |= dict(item.split("=", 1) for item in cfg.beater_env)
    with (
        bench_stack(
            workdir,
            tailors=1,
            beater_settings=settings,
            heap=heap,
            engine_nodes=cfg.engine_nodes,
            router_workers=cfg.router_workers,
        ) as (stack, _anonymous),
        contextlib.ExitStack() as cleanup,
    ):
        # Subscribed before registered (no sweep may deactivate a query in between): the readers
        # gate refuses an anonymous subscription to a sid it cannot describe yet, so the
        # benchmark's subscribers and registrations use the tailor's principal, as the tailor does.
        wamps = [stack.client("tailor", router_url=url) for url in stack.router.urls]
        for wamp in wamps:
            cleanup.callback(wamp.close)
        trees = process_trees(stack)
        probe = Probe(trees | {"client": [os.getpid()]})
        cleanup.callback(probe.stop)
        es = sync_client(stack.engine.url, timeout=120, maxsize=cfg.senders + 4)
        b = Bench(cfg, stack, wamps, es, probe, base_docs(20_000))
        log(f"quick={cfg.quick}; N {cfg.queries}, B={cfg.batch}, C={cfg.senders}, run {cfg.run_s:.0f}s")
        warm_up(b)
        router_ceiling(b)
        largest = max(cfg.queries)
        kept = None
        for n in cfg.queries:
            got = measure_queries(b, n, keep_for_scaling=n == largest and n > ACTIVE_FEW)
            if n == largest and n > ACTIVE_FEW:
                kept = got
        base = find(b.runs, "e2e-max", ACTIVE_FEW)
        if kept is not None and base is not None:
            query_scaling(b, *kept, base=base)
        log("stopping the stack")
    fan = None if cfg.no_fanout else fanout(cfg)
    target = 1000 if 1000 in cfg.queries else largest
    goal_list = goals(b.runs, fan, target)
    emit(report(b, fan, goal_list, cfg.started), cfg.out)
    results = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "machine": {"cores": os.cpu_count()},
        "runs": [
            asdict(r) | {"ratio": r.ratio, "stack_us_per_doc": r.stack_us_per_doc, "cpu_ratio": r.cpu_ratio}
            for r in b.runs
        ],
        "registration": b.registration,
        "fanout": fan,
        "goals": goal_list,
    }
    cfg.json.write_text(json.dumps(results, indent=1))
    log(f"figures written to {cfg.json}")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    return run_in_workdir("compare", lambda workdir: run(cfg, workdir), cfg.keep)


if __name__ == "__main__":
    sys.exit(main())
