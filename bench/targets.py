"""Issue 13's benchmark: does matching read targets cost anything at ingest?

One stack (engine, router, beater), one run, the same 1,000 queries and the
same documents twice:

* ``concrete``: the 1,000 queries registered on one concrete index, every
  document ingested into it;
* ``patterns``: the 1,000 queries spread over 10 patterns (100 each) that
  all cover the same 30 daily indices (``bp-2026.11.01`` ...), documents
  ingested round-robin into those indices: each batch meets all 1,000
  queries, through the covering cache and one percolate request on the
  shared percolator index filtered on the 11 covering targets (the 10
  patterns and the index's own name).

Both sets of queries live in the same shared percolator index (2,000
queries), so each run's filter picks its 1,000.

Each mode runs ``--rounds`` times, alternating, closed loop (``--senders``
requests in flight, ``--batch`` documents each); the median docs/s of each
is printed, and the median of each round's patterns / concrete ratio (the
two runs of a round are next to each other in time; issue 13's goal:
patterns >= 0.95 x concrete). A warm-up runs both modes until their rates
settle first.
Queries stay active (no sweep runs during the measurement) and match about
one document in ten. Nothing is asserted on time.

Usage::

    scripts/bench targets [--quick] [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from autobahn.wamp.exception import ApplicationError

from bench.harness import bench_stack, emit, load_note, log, run_in_workdir
from devstack.wamp_client import WampClient

QUERIES = 1000
DAYS = [f"2026.11.{d:02d}" for d in range(1, 31)]
PATTERNS = [
    "bp-*",
    "bp-2*",
    "bp-20*",
    "bp-202*",
    "bp-2026*",
    "bp-2026.*",
    "bp-2026.1*",
    "bp-2026.11*",
    "bp-2026.11.*",
    "bp*",
]
CONCRETE = "bc-all"


def query(k: int) -> str:
    return f"svc:s{k} AND level:error"


def documents(seed: int, n: int) -> list[dict[str, Any]]:
    """Log-like documents; about one in ten matches exactly one query."""
    rng = random.Random(seed)
    return [
        {
            "@timestamp": "2026-11-15T10:00:00Z",
            "svc": f"s{rng.randrange(QUERIES)}",
            "level": "error" if rng.random() < 0.1 else rng.choice(["info", "warn", "debug"]),
            "message": f"request {rng.randrange(10**6)} took {rng.randrange(2000)} ms",
            "host": f"web{rng.randrange(200):03d}",
        }
        for _ in range(n)
    ]


def register(wamp: WampClient, mode: str, in_flight: int = 32) -> None:
    """The 1,000 queries, ``in_flight`` calls at a time; an engine too busy to answer is retried."""

    def one(k: int) -> None:
        target = CONCRETE if mode == "concrete" else PATTERNS[k % len(PATTERNS)]
        for attempt in range(5):
            try:
                wamp.call("com.estrom.register_query", target, query(k))
                return
            except ApplicationError as err:
                if err.error != "com.estrom.error.unavailable" or attempt == 4:
                    raise
                time.sleep(1.0)

    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(one, range(QUERIES)))


def send(
    beater_url: str, indices: list[str], bodies: list[bytes], senders: int, seconds: float
) -> dict[str, float]:
    """Closed loop: ``senders`` threads, each one POST at a time, round-robin over ``indices``."""
    url = urllib.parse.urlsplit(beater_url)
    deadline = time.perf_counter() + seconds
    counts = {"docs": 0, "published": 0, "errors": 0}
    lock = threading.Lock()
    batch = len(json.loads(bodies[0]))

    def worker(w: int) -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        k = w
        while time.perf_counter() < deadline:
            index = indices[k % len(indices)]
            conn.request(
                "POST",
                f"/api/v0.1/ingest/{index}",
                bodies[k % len(bodies)],
                {"content-type": "application/json"},
            )
            resp = conn.getresponse()
            payload = resp.read()
            with lock:
                if resp.status == 200:
                    counts["docs"] += batch
                    counts["published"] += json.loads(payload)["published"]
                else:
                    counts["errors"] += 1
            k += senders
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "docs_per_s": counts["docs"] / elapsed,
        "published": counts["published"],
        "errors": counts["errors"],
    }


def warm_up(
    beater_url: str, indices: dict[str, list[str]], bodies: list[bytes], senders: int, most: float
) -> None:
    """Both modes in turn, 5 s each, until each one's rate moved less than 5 % since its last turn.

    The engine needs tens of seconds of percolation to reach its speed (JIT, caches): without
    this, whichever mode ran first would be measured on a slower engine.
    """
    deadline = time.perf_counter() + most
    last: dict[str, float] = {}
    while True:
        settled = True
        for mode, names in indices.items():
            rate = send(beater_url, names, bodies, senders, 5.0)["docs_per_s"]
            settled = settled and mode in last and abs(rate - last[mode]) <= 0.05 * last[mode]
            last[mode] = rate
        log("warm-up: " + ", ".join(f"{m} {r:.0f} docs/s" for m, r in last.items()))
        if settled or time.perf_counter() > deadline:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (a smoke run)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--engine-timeout",
        type=float,
        default=None,
        help="the beater's ESTROM_ENGINE_TIMEOUT (default: the beater's 5 s); longer on a starved machine",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 5.0, 1

    def run(workdir: Path) -> None:
        settings = {
            "ESTROM_QUERY_SWEEP_INTERVAL": "3600",
            "ESTROM_QUERY_GRACE": "3600",
            "ESTROM_LOG_LEVEL": "warn",
        }
        if args.engine_timeout is not None:
            settings["ESTROM_ENGINE_TIMEOUT"] = str(args.engine_timeout)
        with bench_stack(workdir, beater_settings=settings) as (stack, wamp):
            beater_url = stack.beater.url
            for mode in ("concrete", "patterns"):
                t0 = time.perf_counter()
                register(wamp, mode)
                log(f"{mode}: {QUERIES} queries registered in {time.perf_counter() - t0:.1f}s")
            docs = documents(20261201, args.batch * 64)
            bodies = [json.dumps(docs[i : i + args.batch]).encode() for i in range(0, len(docs), args.batch)]
            indices = {"concrete": [CONCRETE], "patterns": [f"bp-{d}" for d in DAYS]}
            warm_up(beater_url, indices, bodies, args.senders, 10.0 if args.quick else 180.0)
            results: dict[str, list[dict[str, float]]] = {"concrete": [], "patterns": []}
            for r in range(args.rounds):
                for mode in ("concrete", "patterns") if r % 2 == 0 else ("patterns", "concrete"):
                    figures = send(beater_url, indices[mode], bodies, args.senders, args.seconds)
                    results[mode].append(figures)
                    log(
                        f"round {r + 1} {mode}: {figures['docs_per_s']:.0f} docs/s, {figures['published']} published"
                    )
            median = {m: statistics.median(f["docs_per_s"] for f in results[m]) for m in results}
            # Each round's two runs are next to each other in time: their ratio is what drift
            # (the engine still warming, a neighbour's load) disturbs least.
            paired = [
                p["docs_per_s"] / c["docs_per_s"]
                for p, c in zip(results["patterns"], results["concrete"], strict=True)
                if c["docs_per_s"]
            ]
            ratio = statistics.median(paired) if paired else 0.0
            table = [
                f"read targets, {QUERIES} active queries, batches of {args.batch}, {args.senders} in flight, "
                f"{args.rounds} x {args.seconds:.0f}s per mode (median docs/s)"
                + (f", engine timeout {args.engine_timeout:.0f}s" if args.engine_timeout else ""),
                f"  concrete: 1 index, {QUERIES} queries on it             {median['concrete']:8.0f} docs/s",
                f"  patterns: 10 patterns x 100 queries, 30 daily indices  {median['patterns']:8.0f} docs/s",
                f"  ratio patterns / concrete, median of the rounds' pairs: {ratio:.3f} (goal >= 0.95);"
                f" per round {', '.join(f'{r:.2f}' for r in paired)}",
                "  errors (non-200 answers): "
                + ", ".join(f"{m} {sum(f['errors'] for f in fs):.0f}" for m, fs in results.items()),
            ]
            table.append(load_note())
            emit("\n".join(table), args.out)
            if args.json:
                args.json.write_text(
                    json.dumps(
                        {"median": median, "ratio": ratio, "paired": paired, "rounds": results}, indent=2
                    )
                )

    return run_in_workdir("bench-targets", run, args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
