"""Ingest throughput with an anonymous flood held at its quota, against the same load without it.

Issue 15: one anonymous session registered and subscribed 3,000 queries and
made every ingest percolate against them. With the readers' quotas the
flood is held at ``ESTROM_QUOTA_SUBSCRIPTIONS`` (300 per anonymous address
by default) and its further registrations are refused at the router. This
measures what the held flood still costs: closed-loop ingest (JSON arrays,
a few connections) of the same documents, in short slices that alternate
between two modes within one run, so that both see the same load of a
shared machine (ABBA order, so drift cancels too):

- ``flood``: into the index the flood's held queries read (the flood's 300
  plus one user's query), while the flood keeps knocking (registrations
  refused at the router);
- ``no flood``: into a twin index that only the user's query reads, the
  flood paused.

    .venv/bin/python -m bench.readers_flood [--slice 8] [--rounds 6] [--out bench/results-readers-flood-<date>.txt]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from autobahn.wamp.exception import ApplicationError

from bench.harness import emit, load_note, log, run_in_workdir
from devstack.settings import without_estrom
from devstack.stack import Stack
from devstack.wamp_client import WampClient

INDEX = "bench-flood"
#: the twin index: the same documents, only the user's query reads it
CALM = "bench-calm"
BATCH = 250
CONNECTIONS = 3


def ingest_for(beater: str, seconds: float, index: str) -> tuple[int, float]:
    """Documents accepted by closed-loop senders into ``index`` over ``seconds``, and the time taken."""
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
                "POST", f"/api/v0.1/ingest/{index}", json.dumps(docs), {"content-type": "application/json"}
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
    return sum(done), time.monotonic() - t0


class Flood:
    """One anonymous session registering and subscribing distinct queries until refused, then knocking on."""

    def __init__(self, router_url: str) -> None:
        self.client = WampClient(router_url)
        self.held = 0
        self.refusals = 0
        self.refusal: str = ""
        self._stop = threading.Event()
        self._knocking = threading.Event()
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

    def knock(self, on: bool) -> None:
        """Keep registering (refused) while ``on``; paused otherwise (its subscriptions stay held)."""
        if self._thread is None:

            def loop() -> None:
                while not self._stop.is_set():
                    if not self._knocking.wait(0.2):
                        continue
                    try:
                        self.client.call("com.estrom.register_query", INDEX, f"message:{uuid.uuid4().hex}")
                    except ApplicationError:
                        self.refusals += 1

            self._thread = threading.Thread(target=loop, daemon=True)
            self._thread.start()
        if on:
            self._knocking.set()
        else:
            self._knocking.clear()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.client.close()


def active_queries(stack: Stack, index: str) -> int:
    url = f"{stack.engine.url}/estrom-queries-{index}/_count"
    body = json.dumps({"query": {"term": {"estrom_active": True}}}).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(json.loads(resp.read())["count"])


def run(cfg: argparse.Namespace, workdir: Path) -> None:
    # Readers' quotas at their defaults (what a deployment gets).
    with Stack(workdir, env=without_estrom(os.environ), engine_heap="1g") as stack:
        stack.up(
            beater_settings={
                "ESTROM_LOG_LEVEL": "warn",
                "ESTROM_ENGINE_TIMEOUT": "30",  # a shared, busy machine
            }
        )
        rounds, flood, active = alternate(cfg, stack)
    report(cfg, rounds, flood, active)


Slice = tuple[int, float]


def alternate(cfg: argparse.Namespace, stack: Stack) -> tuple[list[dict[str, Slice]], Flood, dict[str, int]]:
    """The flood filled once, then ``cfg.rounds`` rounds of one slice per mode, in ABBA order."""
    beater = stack.beater.url
    # A normal user's query on each index, followed all along: both modes percolate (an index
    # with no active query skips percolation, which would make the modes incomparable).
    user = stack.client()
    for index in (INDEX, CALM):
        user.subscribe(f"docs-for-{user.call('com.estrom.register_query', index, 'level:error')}")
    flood = Flood(stack.router.url)
    log("the flood registers and subscribes until refused")
    t0 = time.monotonic()
    flood.fill()
    log(f"flood held at {flood.held} subscriptions ({time.monotonic() - t0:.0f} s to fill)")
    active = {index: active_queries(stack, index) for index in (INDEX, CALM)}
    log("warm-up")
    ingest_for(beater, 5, INDEX)
    ingest_for(beater, 5, CALM)
    rounds: list[dict[str, Slice]] = []
    for r in range(cfg.rounds):
        order = ("flood", "no flood") if r % 2 == 0 else ("no flood", "flood")
        got: dict[str, Slice] = {}
        for mode in order:
            flood.knock(mode == "flood")
            got[mode] = ingest_for(beater, cfg.slice, INDEX if mode == "flood" else CALM)
        flood.knock(False)
        rounds.append(got)
        log(f"round {r + 1}: " + ", ".join(f"{m} {n / t:.0f} docs/s" for m, (n, t) in got.items()))
    flood.close()
    user.close()
    return rounds, flood, active


def report(
    cfg: argparse.Namespace, rounds: list[dict[str, Slice]], flood: Flood, active: dict[str, int]
) -> None:
    def rate(mode: str) -> float:
        return sum(r[mode][0] for r in rounds) / sum(r[mode][1] for r in rounds)

    median = statistics.median(
        (r["flood"][0] / r["flood"][1]) / (r["no flood"][0] / r["no flood"][1]) for r in rounds
    )
    lines = [
        f"readers flood bench ({time.strftime('%Y-%m-%d %H:%M')}): closed-loop ingest, "
        f"{CONNECTIONS} connections x {BATCH} docs, {cfg.rounds} rounds of one {cfg.slice:.0f} s slice "
        f"per mode (ABBA order); {load_note()}",
        f"flood held at {flood.held} subscriptions; active queries {INDEX}: {active[INDEX]}, "
        f"{CALM}: {active[CALM]}; refusals while knocking: {flood.refusals}",
        f"flood's refusal: {flood.refusal}",
        f"{'round':>5} {'flood docs/s':>13} {'no flood docs/s':>16} {'flood / no flood':>17}",
    ]
    for i, r in enumerate(rounds, 1):
        f, c = r["flood"][0] / r["flood"][1], r["no flood"][0] / r["no flood"][1]
        lines.append(f"{i:>5} {f:13.0f} {c:16.0f} {f / c * 100 - 100:+16.1f}%")
    lines.append(
        f"{'all':>5} {rate('flood'):13.0f} {rate('no flood'):16.0f} "
        f"{rate('flood') / rate('no flood') * 100 - 100:+16.1f}%   (median of rounds {median * 100 - 100:+.1f}%)"
    )
    emit("\n".join(lines), cfg.out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slice", type=float, default=8.0, help="seconds per slice")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    cfg = parser.parse_args(argv)
    return run_in_workdir("readers-flood", lambda workdir: run(cfg, workdir), cfg.keep)


if __name__ == "__main__":
    raise SystemExit(main())
