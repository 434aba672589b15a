"""Registration: ``com.estrom.register_query`` against the engine writing the same query documents.

Why this exists: issue 18's goal 4 asks for 1,000 registrations per second,
and ``bench/compare.py`` measures the rate but not where it goes. Here, in
rounds on one stack:

- ``estrom``: N queries of a fresh target subscribed, then registered over WAMP
  with ``--in-flight`` calls kept in flight (the tailor's principal, as
  ``compare`` registers). Reported: registrations/s; CPU per registration of
  the engine, router, beater and this process (the load generator); and
  queries per refresh, from the engine's own refresh count: how many
  registrations shared one bulk and refresh (``beater/store/coalesce.py``).
- ``engine``: the same stored documents, read back and written again under
  new ids with ``_bulk`` as the beater writes them, in requests of
  ``--in-flight`` and of 4x that with ``refresh=true``, and without refresh:
  docs/s and the engine's CPU per document. One request at a time, as the
  beater writes one percolator index.

Nothing is asserted on time; every registration must answer its sid.

Usage::

    .venv/bin/python -m bench.registration [--queries 5000] [--rounds 2] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from twisted.internet.defer import DeferredSemaphore, gatherResults

from bench.harness import bench_main, bench_parser, bench_stack, emit, load_note, log, process_trees
from bench.measure import Probe
from bench.receivers import HitLog
from bench.single_doc import SHARED_0
from bench.workload import QuerySet
from common.engine import sync_client
from devstack.wamp_client import WampClient, on_reactor

#: the load generator's processes: the bench's WAMP client and Python engine client
CLIENT = "client"


def refreshes(es: Any) -> int:
    """Refreshes of the shared percolator index so far (primaries), as the engine counts them."""
    if not es.indices.exists(index=SHARED_0):  # before the first registration creates it
        return 0
    return int(es.indices.stats(index=SHARED_0)["_all"]["primaries"]["refresh"]["total"])


def register_all(wamp: WampClient, qs: QuerySet, in_flight: int) -> list[str]:
    """Every query of ``qs`` over WAMP, ``in_flight`` calls kept in flight; their sids in order."""

    async def run() -> list[str]:
        sem = DeferredSemaphore(in_flight)
        calls = [sem.run(wamp.session.call, "com.estrom.register_query", qs.index, q) for q in qs.queries]
        return await gatherResults(calls, consumeErrors=True)

    return on_reactor(run, timeout=1800)


def subscribe_all(wamp: WampClient, qs: QuerySet) -> None:
    """Subscribed first, so that no sweep deactivates a query of the round (its updates refresh)."""

    async def run() -> None:
        sem = DeferredSemaphore(256)
        hits = HitLog()
        subs = [sem.run(wamp.session.subscribe, hits.handler(s), f"docs-for-{s}") for s in qs.sids]
        await gatherResults(subs, consumeErrors=True)

    on_reactor(run, timeout=600)


def stored(es: Any) -> int:
    """Documents in the shared percolator index: the cost of a write grows with them (merges)."""
    if not es.indices.exists(index=SHARED_0):
        return 0
    return int(es.count(index=SHARED_0)["count"])


def estrom_round(wamp: WampClient, es: Any, probe: Probe, n: int, in_flight: int) -> dict[str, Any]:
    qs = QuerySet.make(f"reg-{uuid.uuid4().hex[:6]}", n)
    subscribe_all(wamp, qs)
    held = stored(es)
    before = refreshes(es)
    probe.start()
    t0 = time.perf_counter()
    sids = register_all(wamp, qs, in_flight)
    seconds = time.perf_counter() - t0
    usage = probe.usage()
    if sids != qs.sids:
        raise RuntimeError(f"register_query answered other sids: {sids[:3]} against {qs.sids[:3]}")
    count = refreshes(es) - before
    return {
        "target": qs.index,
        "stored": held,
        "per_s": n / seconds,
        "cpu_us": {name: 1e6 * s / n for name, s in usage.cpu_s.items()},
        "per_refresh": n / max(count, 1),
    }


def stored_documents(es: Any, target: str, limit: int) -> list[dict[str, Any]]:
    resp = es.search(
        index=SHARED_0,
        body={"query": {"term": {"estrom_target": target}}, "size": limit},
        request_timeout=120,
    )
    return [hit["_source"] for hit in resp["hits"]["hits"]]


def engine_round(
    es: Any, probe: Probe, docs: list[dict[str, Any]], size: int, refresh: bool, seconds: float
) -> dict[str, Any]:
    """``docs`` written again under new ids, ``size`` per ``_bulk``, one request at a time."""
    written, k = 0, 0
    probe.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        lines: list[dict[str, Any]] = []
        for j in range(size):
            doc = docs[(k * size + j) % len(docs)]
            lines += [{"index": {"_index": SHARED_0, "_id": f"bench-{uuid.uuid4().hex}"}}, doc]
        resp = es.bulk(body=lines, refresh="true" if refresh else "false", filter_path="errors")
        if resp.get("errors"):
            raise RuntimeError("the engine refused a stored query document")
        written += size
        k += 1
    elapsed = time.perf_counter() - t0
    usage = probe.usage()
    return {"per_s": written / elapsed, "engine_us": 1e6 * usage.cpu_s["engine"] / written}


def run(cfg: argparse.Namespace, workdir: Path, started: float) -> None:
    with bench_stack(workdir) as (stack, _anonymous):
        wamp = stack.client("tailor")
        es = sync_client(stack.engine.url, timeout=120)
        probe = Probe(process_trees(stack) | {CLIENT: [os.getpid()]})
        rows: list[dict[str, Any]] = []
        try:
            log(f"warm-up: {cfg.warmup} registrations")
            estrom_round(wamp, es, probe, cfg.warmup, cfg.in_flight)
            for r in range(cfg.rounds):
                got = estrom_round(wamp, es, probe, cfg.queries, cfg.in_flight)
                docs = stored_documents(es, got["target"], min(cfg.queries, 2000))
                variants = {
                    f"_bulk {cfg.in_flight}, refresh": (cfg.in_flight, True),
                    f"_bulk {4 * cfg.in_flight}, refresh": (4 * cfg.in_flight, True),
                    f"_bulk {cfg.in_flight}, no refresh": (cfg.in_flight, False),
                }
                engine = {
                    name: engine_round(es, probe, docs, size, refresh, cfg.seconds)
                    for name, (size, refresh) in variants.items()
                }
                log(
                    f"round {r + 1}: estrom {got['per_s']:.0f}/s ({got['per_refresh']:.0f} per refresh); "
                    + ", ".join(f"{n} {v['per_s']:.0f}/s" for n, v in engine.items())
                )
                rows.append({"estrom": got, "engine": engine})
        finally:
            wamp.close()
    emit(report(cfg, rows, started), cfg.out)


def report(cfg: argparse.Namespace, rows: list[dict[str, Any]], started: float) -> str:
    parts = ("engine", "router", "beater", CLIENT)
    lines = [
        f"registration of N = {cfg.queries} queries of a fresh target per round over WAMP, "
        f"{cfg.in_flight} calls in flight; the engine writing the same documents for {cfg.seconds:.0f} s",
        "",
        f"{'round':<6} {'stored':>7} {'estrom /s':>9} {'per refresh':>11} "
        + "".join(f"{p + ' us':>11}" for p in parts)
        + f"{'total us':>10}",
    ]
    for i, row in enumerate(rows, 1):
        e = row["estrom"]
        total = sum(e["cpu_us"].get(p, 0.0) for p in parts)
        lines.append(
            f"{i:<6} {e['stored']:>7} {e['per_s']:>9.0f} {e['per_refresh']:>11.1f} "
            + "".join(f"{e['cpu_us'].get(p, 0.0):>11.0f}" for p in parts)
            + f"{total:>10.0f}"
        )
    lines += ["", "the engine alone, same documents, one _bulk at a time:", ""]
    names = list(rows[0]["engine"]) if rows else []
    lines.append(f"{'round':<6}" + "".join(f"{n:>28}" for n in names))
    for i, row in enumerate(rows, 1):
        cells = [
            f"{row['engine'][n]['per_s']:.0f}/s, {row['engine'][n]['engine_us']:.0f} us/doc" for n in names
        ]
        lines.append(f"{i:<6}" + "".join(f"{c:>28}" for c in cells))
    lines += [
        "",
        "stored: documents in the shared percolator index when the round began (the engine-alone",
        "runs write theirs there too, so each round starts with more); per refresh: registrations",
        "per refresh of that index, the engine's count; us: CPU microseconds per registration (per",
        f"document for the engine alone), on {os.cpu_count()} cores; client: this process (the load generator)",
        f"total wall time {time.perf_counter() - started:.0f} s",
        load_note(),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = bench_parser(__doc__)
    p.add_argument("--queries", type=int, default=5000, help="registrations per round (N)")
    p.add_argument("--warmup", type=int, default=2000, help="registrations before the first round")
    p.add_argument("--in-flight", type=int, default=64, help="calls kept in flight (compare uses 64)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of estrom then the engine alone")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each engine-alone run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return bench_main("registration", argv, parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
