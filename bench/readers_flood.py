"""Ingest throughput with an anonymous flood held at its quota, against the same load without it.

Issue 15: one anonymous session registered and subscribed 3,000 queries and
made every ingest percolate against them. With the readers' quotas the
flood is held at ``ESTROM_QUOTA_SUBSCRIPTIONS`` (300 per anonymous address
by default) and its further registrations are refused at the router. This
measures what the held flood still costs: closed-loop ingest (JSON arrays,
a few connections) into the index the flood's queries read, in three
phases of equal length: no flood, flood held (and still knocking), no flood
again (its session gone), so drift of a busy machine shows as the gap
between the first and last phase.

    .venv/bin/python -m bench.readers_flood [--seconds 20] [--out bench/results-readers-flood-<date>.txt]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from autobahn.wamp.exception import ApplicationError

from bench.harness import emit, load_note, log, run_in_workdir
from devstack.settings import without_estrom
from devstack.stack import Stack
from devstack.wamp_client import WampClient

INDEX = "bench-flood"
BATCH = 250
CONNECTIONS = 3


def ingest_for(beater: str, seconds: float) -> float:
    """Documents per second accepted by closed-loop senders over ``seconds``."""
    host, port = beater.removeprefix("http://").split(":")
    done = [0] * CONNECTIONS
    deadline = time.monotonic() + seconds

    def sender(slot: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        n = 0
        while time.monotonic() < deadline:
            docs = [
                {"level": "info", "service": f"s{i % 7}", "message": f"m {n} {i}", "n": n}
                for i in range(BATCH)
            ]
            conn.request(
                "POST", f"/api/v0.1/ingest/{INDEX}", json.dumps(docs), {"content-type": "application/json"}
            )
            resp = conn.getresponse()
            body = json.loads(resp.read())
            if resp.status == 200:
                done[slot] += int(body["accepted"])
            n += 1
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=sender, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0)


class Flood:
    """One anonymous session registering and subscribing distinct queries until refused, then knocking on."""

    def __init__(self, router_url: str) -> None:
        self.client = WampClient(router_url)
        self.held = 0
        self.refusals = 0
        self.refusal: str = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fill(self) -> None:
        while True:
            try:
                sid = self.client.call("com.estrom.register_query", INDEX, f"message:{uuid.uuid4().hex}")
            except ApplicationError as exc:
                self.refusal = f"{exc.error}: {exc.args[0] if exc.args else ''}"
                if "ESTROM_QUOTA_SUBSCRIPTIONS" in self.refusal:
                    return
                time.sleep(0.05)  # the registration rate's bucket refills; the flood keeps going
                continue
            self.client.subscribe(f"docs-for-{sid}")
            self.held += 1

    def knock(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.client.call("com.estrom.register_query", INDEX, f"message:{uuid.uuid4().hex}")
                except ApplicationError:
                    self.refusals += 1

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.client.close()


def active_queries(stack: Stack) -> int:
    url = f"{stack.engine.url}/estrom-queries-{INDEX}/_count"
    body = json.dumps({"query": {"term": {"estrom_active": True}}}).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(json.loads(resp.read())["count"])


def wait_idle(stack: Stack, timeout: float = 120.0) -> None:
    """Until the beater's sweep deactivated the flood's queries (no subscriber any more); the user's stays."""
    deadline = time.monotonic() + timeout
    while active_queries(stack) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    log(f"active queries left: {active_queries(stack)} (the user's)")


def run(cfg: argparse.Namespace, workdir: Path) -> None:
    # Readers' quotas at their defaults (what a deployment gets); a short sweep, so that the
    # flood's queries go idle soon after its session left (phase 3).
    with Stack(workdir, env=without_estrom(os.environ), engine_heap="1g") as stack:
        stack.up(
            beater_settings={
                "ESTROM_LOG_LEVEL": "warn",
                "ESTROM_QUERY_SWEEP_INTERVAL": "2",
                "ESTROM_ENGINE_TIMEOUT": "30",  # a shared, busy machine
            }
        )
        rows, flood = phases(cfg, stack)
    report(cfg, rows, flood)


def phases(cfg: argparse.Namespace, stack: Stack) -> tuple[list[tuple[str, float, Any]], Flood]:
    """No flood, flood held (knocking on), no flood again (its queries idle)."""
    beater = stack.beater.url
    rows: list[tuple[str, float, Any]] = []
    # A normal user's query, followed all along: every phase percolates (an index with no
    # active query skips percolation, which would make the first phase incomparable).
    user = stack.client()
    user.subscribe(f"docs-for-{user.call('com.estrom.register_query', INDEX, 'level:error')}")
    log("warm-up")
    ingest_for(beater, 5)
    log("phase 1: no flood")
    rows.append(("no flood", ingest_for(beater, cfg.seconds), ""))
    flood = Flood(stack.router.url)
    log("the flood registers and subscribes until refused")
    t0 = time.monotonic()
    flood.fill()
    filled = time.monotonic() - t0
    flood.knock()
    log(f"phase 2: flood held at {flood.held} subscriptions ({filled:.0f} s to fill), knocking on")
    rate = ingest_for(beater, cfg.seconds)
    rows.append((f"flood held at {flood.held} (active: {active_queries(stack)})", rate, flood.refusals))
    flood.close()
    log("phase 3: no flood again")
    wait_idle(stack)
    rows.append(("no flood (after)", ingest_for(beater, cfg.seconds), ""))
    user.close()
    return rows, flood


def report(cfg: argparse.Namespace, rows: list[tuple[str, float, Any]], flood: Flood) -> None:
    base = (rows[0][1] + rows[2][1]) / 2
    lines = [
        f"readers flood bench ({time.strftime('%Y-%m-%d %H:%M')}): closed-loop ingest into {INDEX}, "
        f"{CONNECTIONS} connections x {BATCH} docs, {cfg.seconds:.0f} s per phase; {load_note()}",
        f"flood's refusal: {flood.refusal}",
        f"{'phase':36} {'docs/s':>9} {'vs no flood':>12} {'refusals':>9}",
    ]
    for name, rate, refusals in rows:
        lines.append(f"{name:36} {rate:9.0f} {rate / base * 100 - 100:+11.1f}% {refusals!s:>9}")
    emit("\n".join(lines), cfg.out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    cfg = parser.parse_args(argv)
    return run_in_workdir("readers-flood", lambda workdir: run(cfg, workdir), cfg.keep)


if __name__ == "__main__":
    raise SystemExit(main())
