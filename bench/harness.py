"""What every benchmark does around its measurements: a stack of its own, a work directory, the report.

The stack is ``devstack.stack.Stack`` (free ports, fresh router secrets, no
developer ``ESTROM_*`` settings), entered for the run and left, logs kept
when the run fails or ``--keep`` asks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.measure import process_tree
from devstack.engine import cluster_nodes, start_cluster
from devstack.handles import EngineHandle
from devstack.processes import free_port
from devstack.settings import UNLIMITED_QUOTAS, engine_dist, engine_home, without_estrom
from devstack.stack import Stack
from devstack.wamp_client import WampClient, ensure_reactor

PROCESSES = ("engine", "router", "beater", "tailor")


def bench_env() -> dict[str, str]:
    """Every child's base environment: ours without ESTROM_*, readers' quotas off (one client address)."""
    return without_estrom(os.environ) | UNLIMITED_QUOTAS


def log(msg: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def bench_stack(
    workdir: Path,
    *,
    tailors: int = 0,
    beater_settings: Mapping[str, str] | None = None,
    tailor_settings: Mapping[str, str] | None = None,
    heap: str = "1g",
    engine_nodes: int = 1,
    router_workers: int = 1,
) -> Iterator[tuple[Stack, WampClient]]:
    """Engine, router, one beater (and ``tailors``), plus an anonymous WAMP session; all stopped after.

    ``engine_nodes`` > 1: a cluster of that many nodes on loopback (``heap`` each), as the cluster
    tests start it; beater and tailor get every node's URL. ``router_workers``: the router's nodes
    (partitions, common/router_tier.py)."""
    t0 = time.perf_counter()
    with contextlib.ExitStack() as nodes_up:
        nodes = []
        if engine_nodes > 1:
            nodes = cluster_nodes(
                engine_home(engine_dist()), workdir / "cluster", engine_nodes, heap=heap, ports=free_port
            )
            for node in nodes:
                nodes_up.callback(node.stop)
            start_cluster(nodes, workdir / "cluster")
        with Stack(
            workdir,
            engine_heap=heap,
            env=bench_env(),
            engine_urls=[n.url for n in nodes],
            router_workers=router_workers,
        ) as stack:
            stack.up(tailors=tailors, beater_settings=beater_settings, tailor_settings=tailor_settings)
            if nodes:
                # The nodes this run started, so their processes are measured.
                stack.engines["engine"] = EngineHandle(stack.engine.urls, nodes)
            log(
                f"stack up in {time.perf_counter() - t0:.0f}s: engine {stack.engine.url}, router {stack.router.url}"
            )
            ensure_reactor()
            wamp = stack.client()
            try:
                yield stack, wamp
            finally:
                log("tearing down")
                wamp.close()


def process_trees(stack: Stack) -> dict[str, list[int]]:
    """Each part's processes (``pids`` and their children): every engine node's under "engine"."""
    trees = {name: process_tree(pid) for name, pid in pids(stack).items()}
    trees["engine"] = [
        p for node in stack.engine.nodes if node.process for p in process_tree(node.process.pid)
    ]
    trees["router"] += [p for node in stack.router.partitions for p in process_tree(node.pid)]
    return trees


def pids(stack: Stack) -> dict[str, int]:
    """The process id of each part that runs: engine launcher, router controller, beater, tailor."""
    handles = {"engine": stack.engine, "router": stack.router, "beater": stack.beater}
    if stack.tailors:
        handles["tailor"] = stack.tailor
    return {name: handle.pid for name, handle in handles.items()}


def _interrupted(_signum: int, _frame: object) -> None:
    """SIGINT or SIGTERM: stop the run; further signals are ignored so the teardown completes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_in_workdir(name: str, run: Callable[[Path], None], keep: bool) -> int:
    """Run a benchmark in a fresh work directory; keep its logs when it fails or when asked."""
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)  # even where the launcher ignored it (``cmd &``)
    # Under /tmp, not the checkout: the unprivileged engine user must reach it.
    workdir = Path(tempfile.mkdtemp(prefix=f"estrom-bench-{name}-"))
    workdir.chmod(0o755)
    try:
        run(workdir)
    except KeyboardInterrupt:
        log(f"interrupted; stack stopped, logs kept in {workdir}")
        return 130
    except BaseException:
        log(f"failed; stack stopped, logs kept in {workdir}")
        raise
    if keep:
        log(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's options: described by its docstring's first paragraph, with ``--out`` and ``--keep``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="also write the report here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return p


def bench_main(name: str, argv: list[str] | None, parse: Any, run: Any) -> int:
    """Parse the options, run in a fresh work directory (kept on failure or ``--keep``)."""
    cfg = parse(argv)
    started = time.perf_counter()
    return run_in_workdir(name, lambda workdir: run(cfg, workdir, started), cfg.keep)


def emit(text: str, out: Path | None) -> None:
    """The figures to stdout, and to ``out`` when given."""
    print(text, flush=True)
    if out:
        out.write_text(text + "\n")
        log(f"written to {out}")


def emit_figures(text: str, out: Path | None, json_path: Path | None, figures: dict[str, Any]) -> None:
    """The report to stdout (and ``out``), the figures as JSON to ``json_path`` when asked."""
    emit(text, out)
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1) + "\n")
        log(f"figures written to {json_path}")


def load_note() -> str:
    """The machine's load now: on a shared box the figures are noisy, and the report says so."""
    one, five, _ = os.getloadavg()
    return (
        f"NOTE: measured on a shared {os.cpu_count()}-core machine while other work ran (load average "
        f"{one:.1f} / {five:.1f} over 1 / 5 min at the end): figures are noisy, compare within the run."
    )
