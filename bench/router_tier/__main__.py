"""Router tier benchmark: crossbar's own mechanism for a realm on several cores, K = 1 against K = 2.

Why this exists
---------------
Every estrom event passes through one crossbar router worker, on one core
(docs/scaling.md). crossbar's answer is several routers hosting the same
realm, router links between them, and proxy workers in front; here each
router is a node of its own, so that one router's crash is its partition's
alone (bench/router_tier/config.py). Before estrom's router is built on it, this
measures what the mechanism itself gives on this machine, on a router-bound
workload shaped like estrom's: acknowledged publishes of one event per sid
(as a beater publishes), one subscriber holding every sid (as a tailor does).

For each layout, on fresh crossbar nodes (no estrom service, no engine):

- ``K=1``: one router; publisher and subscriber connect to it.
- ``K=2``: two router nodes; publisher and subscriber each hold one session
  per router and use the sid's partition (``common/partitions.py``).
- ``K=2 unlinked``: as K=2 without the router links, which a partition-aware
  subscriber does not need: what the links cost.
- ``K=2 proxied``: the publisher as in K=2, the subscriber through the proxy
  node's one URL, as a client that knows nothing of partitions: its session
  lands on one router, the other router's events reach it over a router
  link.
- ``K=1 estrom`` and ``K=2 estrom``: estrom's own router nodes, as the stack
  starts them (``devstack/router.py``: the roles, the readers gate, WAMP-CRA;
  common/router_tier.py), the publisher as the beater and the subscriber as
  the tailor, each at the sid's partition's node.

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

from bench.harness import bench_env, bench_main, bench_parser, emit_figures, load_note, log
from bench.measure import cpu_seconds, process_tree
from bench.router_tier.config import Tier, render
from devstack.processes import free_port, wait_for_port
from devstack.router import generate_secrets, router_process, router_venv
from devstack.settings import router_env, secret_var

WARM_UP_S = 3.0
DRAIN_S = 3.0


@dataclass
class Layout:
    name: str
    workers: int
    proxied: bool
    links: bool = True
    #: estrom's router nodes (devstack/router.py) instead of this benchmark's bare crossbar nodes
    estrom: bool = False


LAYOUTS = [
    Layout("K=1", 1, False),
    Layout("K=2", 2, False),
    Layout("K=2 unlinked", 2, False, links=False),
    Layout("K=2 proxied", 2, True),
    Layout("K=1 estrom", 1, False, links=False, estrom=True),
    Layout("K=2 estrom", 2, False, links=False, estrom=True),
]


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
    p.add_argument(
        "--layouts",
        default=",".join(layout.name for layout in LAYOUTS),
        help="which layouts, in this order (the first is the base of the ratio)",
    )
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    return p.parse_args(argv)


def _wait_links(log_paths: list[Path], links_each: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.read_text(errors="replace").count(" started on realm ") >= links_each for p in log_paths):
            return
        time.sleep(0.2)
    raise TimeoutError(f"router links not all started after {timeout:.0f}s")


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


def _child(
    role: str, urls: list[str], sids_file: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
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
        env=env,
    )


def _start_node(cbdir: Path) -> subprocess.Popen[bytes]:
    with (cbdir / "node.log").open("wb") as out:
        return subprocess.Popen(
            [str(router_venv() / "bin" / "crossbar"), "start", "--cbdir", str(cbdir), "--loglevel", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(nodes: list[subprocess.Popen[bytes]]) -> None:
    for node in nodes:
        node.terminate()
    for node in nodes:
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()


def _measured(
    nodes: list[subprocess.Popen[bytes]], load: list[int], window: tuple[float, float]
) -> dict[str, float]:
    """CPU seconds of the router workers, the proxy workers and the load processes within ``window``."""
    roles: dict[str, list[int]] = {}
    for node in nodes:
        for kind, found in _roles(node.pid).items():
            roles.setdefault(kind, []).extend(found)
    time.sleep(max(0.0, window[0] - time.time()))
    before = {k: cpu_seconds(v) for k, v in roles.items()} | {"load": cpu_seconds(load)}
    time.sleep(max(0.0, window[1] - time.time()))
    after = {k: cpu_seconds(v) for k, v in roles.items()} | {"load": cpu_seconds(load)}
    return {k: after[k] - before[k] for k in after}


def _estrom_nodes(
    root: Path, ports: list[int]
) -> tuple[list[subprocess.Popen[bytes]], dict[str, dict[str, str]]]:
    """estrom's router nodes on ``ports`` (partition order), and the load processes' environments:
    the publisher signs in as the beater, the subscriber as the tailor."""
    keys = generate_secrets()
    env = router_env(bench_env(), keys)
    nodes = []
    for partition, port in enumerate(ports):
        cbdir = root / f"node-{partition}"
        proc = router_process(
            cbdir, host="127.0.0.1", port=port, log_path=cbdir / "node.log", env=env, partition=partition
        )
        proc.start()
        assert proc.process is not None
        nodes.append(proc.process)
    roles = {"pub": "beater", "sub": "tailor"}
    return nodes, {
        child: bench_env() | {"ESTROM_BENCH_AUTHID": role, "ESTROM_BENCH_SECRET": keys[secret_var(role)]}
        for child, role in roles.items()
    }


def run_layout(cfg: Any, layout: Layout, workdir: Path, sids_file: Path) -> Result:
    root = workdir / layout.name.replace(" ", "-").replace("=", "")
    ports = [free_port() for _ in range(layout.workers)]
    envs: dict[str, dict[str, str]] = {}
    if layout.estrom:
        nodes, envs = _estrom_nodes(root, ports)
        tier = Tier(ports, None, [], None)
    else:
        proxy = (free_port(), [free_port() for _ in range(layout.workers)]) if layout.proxied else None
        tier = render(root, ports, proxy, layout.links)
        nodes = [_start_node(d) for d in [*tier.router_dirs, *([tier.proxy_dir] if tier.proxy_dir else [])]]
    children: list[subprocess.Popen[str]] = []
    try:
        for port, node in zip(tier.worker_ports, nodes, strict=False):
            wait_for_port("127.0.0.1", port, 120, lambda node=node: node.poll() is None)
        if tier.proxy_port is not None:
            wait_for_port("127.0.0.1", tier.proxy_port, 120, lambda: nodes[-1].poll() is None)
        if layout.workers > 1 and layout.links:
            _wait_links([d / "node.log" for d in tier.router_dirs], layout.workers - 1, 60)
        sub_urls = [tier.proxy_url] if tier.proxy_url else tier.worker_urls
        start = time.time() + 5.0
        window = (start + WARM_UP_S, start + WARM_UP_S + cfg.seconds)
        until = window[1] + DRAIN_S
        sub = _child(
            "sub",
            sub_urls,
            sids_file,
            "--window",
            f"{window[0]},{window[1]}",
            "--until",
            str(until),
            env=envs.get("sub"),
        )
        children.append(sub)
        assert sub.stdout is not None
        if sub.stdout.readline().strip() != "ready":
            raise RuntimeError("the subscriber did not get ready")
        if time.time() + 1.0 > start:
            raise RuntimeError("the subscriber took too long to subscribe; the window is gone")
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
            env=envs.get("pub"),
        )
        children.append(pub)
        used = _measured(nodes, [sub.pid, pub.pid], window)
        assert pub.stdout is not None
        published = json.loads(pub.stdout.readline())["sent"]
        got = json.loads(sub.stdout.readline())
    finally:
        for child in children:
            child.kill()
        _stop(nodes)
    in_window = max(1, got["events"])
    return Result(
        layout=layout.name,
        events_per_s=got["events"] / cfg.seconds,
        published=published,
        delivered=got["total"],
        router_us_per_event=1e6 * used.get("router", 0.0) / in_window,
        proxy_us_per_event=1e6 * used.get("proxy", 0.0) / in_window,
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
    chosen = {layout.name: layout for layout in LAYOUTS}
    for name in cfg.layouts.split(","):
        layout = chosen[name.strip()]
        log(f"{layout.name}: starting")
        results.append(run_layout(cfg, layout, workdir, sids_file))
        log(f"{layout.name}: {results[-1].events_per_s:,.0f} events/s")
    emit_figures(report(cfg, results), cfg.out, cfg.json, {"results": [asdict(r) for r in results]})
    log(f"done in {time.perf_counter() - started:.0f}s")


def main(argv: list[str] | None = None) -> int:
    return bench_main("router-tier", argv, _parse, run)


if __name__ == "__main__":
    sys.exit(main())
