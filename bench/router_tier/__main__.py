"""Router tier benchmark: crossbar's own mechanism for a realm on several cores, K = 1 against K = 2.

Why this exists
---------------
Every estrom event passes through one crossbar router worker, on one core
(docs/scaling.md). crossbar's answer is several router workers hosting the
same realm, router links between them, and proxy workers in front
(bench/router_tier/config.py). Before estrom's router is built on it, this
measures what the mechanism itself gives on this machine, on a router-bound
workload shaped like estrom's: acknowledged publishes of one event per sid
(as a beater publishes), one subscriber holding every sid (as a tailor does).

For each layout, on a fresh crossbar node (no estrom service, no engine):

- ``K=1``: one router worker; publisher and subscriber connect to it.
- ``K=2``: two router workers; publisher and subscriber each hold one session
  per worker and use the sid's partition (``common/partitions.py``).
- ``K=2 proxied``: the publisher as in K=2, the subscriber through a proxy
  worker on one URL, as a client that knows nothing of partitions: its
  session lands on one worker, the other worker's events reach it over a
  router link.

It reports events delivered per second in the measured window, the router
workers' (and proxy's) CPU per delivered event, the load processes' CPU, and
delivery latency p50 / p99. Everything shares this machine's cores (the
load processes too): compare within a run. Nothing is asserted on time.

Usage::

    scripts/bench router-tier [--seconds S] [--sids N] [--hits H] [--out PATH] [--json PATH]
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness import bench_main, bench_parser, emit_figures, load_note, log
from bench.measure import cpu_seconds, process_tree
from bench.router_tier.config import Tier, node_key, render
from devstack.processes import free_port
from devstack.router import router_venv

WARM_UP_S = 3.0
DRAIN_S = 3.0


@dataclass
class Layout:
    name: str
    workers: int
    proxied: bool


LAYOUTS = [Layout("K=1", 1, False), Layout("K=2", 2, False), Layout("K=2 proxied", 2, True)]


@dataclass
class Result:
    layout: str
    events_per_s: float
    published: int
    delivered: int
    router_us_per_event: float
    proxy_us_per_event: float
    load_cpu_pct: float
    p50_ms: float | None
    p99_ms: float | None


def _parse(argv: list[str] | None) -> Any:
    p = bench_parser(__doc__ or "")
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per layout")
    p.add_argument("--sids", type=int, default=64, help="distinct sids (topics)")
    p.add_argument("--hits", type=int, default=1, help="hits per event")
    p.add_argument("--inflight", type=int, default=32, help="acknowledged publishes in flight per session")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    return p.parse_args(argv)


def _wait_listening(port: int, timeout: float, node: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise RuntimeError("crossbar exited while starting; see its log")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port} after {timeout:.0f}s")


def _wait_links(log_path: Path, links: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_path.read_text(errors="replace").count("Router link ") >= 2 * links and (
            log_path.read_text(errors="replace").count(" started on realm ") >= links
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{links} router links not started after {timeout:.0f}s")


def _roles(node_pid: int) -> dict[str, list[int]]:
    """The node's processes by role: router workers, proxy workers, the controller."""
    roles: dict[str, list[int]] = {"router": [], "proxy": [], "controller": []}
    for pid in process_tree(node_pid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # crossbar names its processes: "crossbar-worker [crossbar.worker.router.RouterController]"
        kind = (
            "router"
            if "RouterController" in title
            else "proxy"
            if "ProxyController" in title
            else "controller"
        )
        roles[kind].append(pid)
    return roles


def _child(role: str, urls: list[str], sids_file: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.router_tier.child",
            role,
            "--urls",
            ",".join(urls),
            "--sids",
            str(sids_file),
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def run_layout(cfg: Any, layout: Layout, workdir: Path, sids_file: Path) -> Result:
    cbdir = workdir / layout.name.replace(" ", "-").replace("=", "")
    ports = [free_port() for _ in range(layout.workers)]
    tier: Tier = render(cbdir, ports, free_port() if layout.proxied else None, node_key(cbdir))
    log_path = cbdir / "node.log"
    with log_path.open("wb") as out:
        node = subprocess.Popen(
            [str(router_venv() / "bin" / "crossbar"), "start", "--cbdir", str(cbdir), "--loglevel", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    children: list[subprocess.Popen[str]] = []
    try:
        for port in [*tier.worker_ports, *([tier.proxy_port] if tier.proxy_port else [])]:
            _wait_listening(port, 120, node)
        links = layout.workers * (layout.workers - 1)
        if links:
            _wait_links(log_path, links, 60)
        sub_urls = [tier.proxy_url] if layout.proxied and tier.proxy_url else tier.worker_urls
        start = time.time() + 5.0
        window = (start + WARM_UP_S, start + WARM_UP_S + cfg.seconds)
        until = window[1] + DRAIN_S
        sub = _child(
            "sub", sub_urls, sids_file, "--window", f"{window[0]},{window[1]}", "--until", str(until)
        )
        children.append(sub)
        assert sub.stdout is not None
        if sub.stdout.readline().strip() != "ready":
            raise RuntimeError("the subscriber did not get ready")
        start = max(start, time.time() + 1.0)
        window = (start + WARM_UP_S, start + WARM_UP_S + cfg.seconds)
        pub = _child(
            "pub",
            tier.worker_urls,
            sids_file,
            "--start",
            str(start),
            "--seconds",
            str(WARM_UP_S + cfg.seconds),
            "--inflight",
            str(cfg.inflight),
            "--hits",
            str(cfg.hits),
        )
        children.append(pub)
        roles = _roles(node.pid)
        time.sleep(max(0.0, window[0] - time.time()))
        load = [sub.pid, pub.pid]
        before = {k: cpu_seconds(v) for k, v in roles.items()} | {"load": cpu_seconds(load)}
        time.sleep(max(0.0, window[1] - time.time()))
        after = {k: cpu_seconds(v) for k, v in roles.items()} | {"load": cpu_seconds(load)}
        assert pub.stdout is not None
        published = json.loads(pub.stdout.readline())["sent"]
        got = json.loads(sub.stdout.readline())
    finally:
        for child in children:
            child.kill()
        node.terminate()
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
    used = {k: after[k] - before[k] for k in after}
    delivered = max(1, got["events"])
    return Result(
        layout=layout.name,
        events_per_s=got["events"] / cfg.seconds,
        published=published,
        delivered=got["total"],
        router_us_per_event=1e6 * used.get("router", 0.0) / delivered,
        proxy_us_per_event=1e6 * used.get("proxy", 0.0) / delivered,
        load_cpu_pct=100 * used["load"] / cfg.seconds,
        p50_ms=got["p50"],
        p99_ms=got["p99"],
    )


def report(cfg: Any, results: list[Result]) -> str:
    base = results[0].events_per_s or 1.0
    lines = [
        f"Router tier: {cfg.sids} sids, {cfg.hits} hit(s) per event, {cfg.inflight} acknowledged publishes "
        f"in flight per session, {cfg.seconds:.0f} s measured per layout",
        "",
        "| layout | events/s delivered | x K=1 | router CPU µs/event | proxy CPU µs/event | load CPU % | p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.1f}"
        p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.1f}"
        lines.append(
            f"| {r.layout} | {r.events_per_s:,.0f} | {r.events_per_s / base:.2f} | {r.router_us_per_event:.0f} | "
            f"{r.proxy_us_per_event:.0f} | {r.load_cpu_pct:.0f} | {p50} / {p99} |"
        )
    lines += ["", load_note()]
    return "\n".join(lines)


def run(cfg: Any, workdir: Path, started: float) -> None:
    sids_file = workdir / "sids.json"
    sids_file.write_text(json.dumps([secrets.token_hex(8) for _ in range(cfg.sids)]))
    results = []
    for layout in LAYOUTS:
        log(f"{layout.name}: starting")
        results.append(run_layout(cfg, layout, workdir, sids_file))
        log(f"{layout.name}: {results[-1].events_per_s:,.0f} events/s")
    emit_figures(report(cfg, results), cfg.out, cfg.json, {"results": [asdict(r) for r in results]})
    log(f"done in {time.perf_counter() - started:.0f}s")


def main(argv: list[str] | None = None) -> int:
    return bench_main("router-tier", argv, _parse, run)


if __name__ == "__main__":
    sys.exit(main())
