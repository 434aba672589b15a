"""One document at a time: POST to tail, beside the engine's own percolate request.

Why this exists: a person watching a live tail feels each document's
latency, not a batch's. This sends single-document POSTs at a steady rate
(100/s by default) to the beater, with N stored and active queries, and
reads each hit from an NDJSON tail through the tailor (and from a WAMP
subscriber, to tell the tailor's share from the rest); in the same run,
alternating with it, the very request the beater sends the engine for one
document (``_msearch`` of one percolate search, ``beater/matching/percolate.py``) goes
straight to the engine at the same rate from the same kind of client.
Reported: p50/p99 of POST-to-tail, POST-to-WAMP, POST-to-answer, the
beater's own percolate time (its ``percolate_request_seconds``), the direct
request's time and the engine's ``took``, and CPU per document of each
process. Nothing is asserted on time.

Usage::

    scripts/bench single [--queries 1000] [--rate 100] [--seconds 15] [--rounds 2]
        [--beater-env ESTROM_X=VALUE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from twisted.internet.defer import DeferredSemaphore, gatherResults

from beater.matching.search import DOCUMENT_PAGE_SIZE, scope_filter
from beater.matching.search import search_body as _search_body
from beater.store.targets import RECENT_SLACK_MS
from bench.harness import bench_stack, emit, load_note, log, pids, run_in_workdir
from bench.measure import Probe, pct, process_tree
from bench.receivers import HitLog, Tails
from bench.stored_queries import PERC_PREFIX, check_document_shape, query_document
from bench.workload import QuerySet, Stream, base_docs
from common.contract import topic_for
from common.engine import sync_client
from devstack.metrics_page import samples
from devstack.sender import Retry, Sender
from devstack.wamp_client import WampClient, on_reactor

#: The shared percolator index every target's queries are in (beater/store/mappings.py).
SHARED_0 = PERC_PREFIX + "_shared-0"
PROCESSES = ("beater", "tailor", "router", "engine")


def subscribe_and_register(wamp: WampClient, es: Any, qs: QuerySet, hitlog: HitLog) -> None:
    """Every sid subscribed first (so no sweep deactivates one), then registered: the first 64 over
    WAMP (the first creates the percolator index), the rest written with ``_bulk`` as registration
    writes them (``bench/stored_queries.py``): this benchmark is about ingest, not registration."""

    async def run() -> None:
        sem = DeferredSemaphore(256)
        subs = [sem.run(wamp.session.subscribe, hitlog.handler(s), topic_for(s)) for s in qs.sids]
        await gatherResults(subs, consumeErrors=True)
        await wamp.session.call("com.estrom.register_query", qs.index, qs.queries[0])
        sem = DeferredSemaphore(16)
        calls = [
            sem.run(wamp.session.call, "com.estrom.register_query", qs.index, q) for q in qs.queries[1:64]
        ]
        await gatherResults(calls, consumeErrors=True)

    on_reactor(run, timeout=600)
    check_document_shape(es, qs.index, qs.sids[0], qs.queries[0])
    now_ms = int(time.time() * 1000)
    lines: list[dict[str, Any]] = []
    for sid, query in zip(qs.sids[64:], qs.queries[64:], strict=True):
        lines += [
            {"index": {"_index": PERC_PREFIX + qs.index, "_id": sid}},
            query_document(qs.index, query, now_ms),
        ]
    if lines:
        resp = es.bulk(body=lines, filter_path="errors,items.*.error")
        if resp.get("errors"):
            raise RuntimeError(f"seeding failed: {resp['items'][:2]}")
    es.indices.refresh(index=PERC_PREFIX + qs.index)


def percolate_stats(beater_url: str) -> tuple[float, float]:
    """(sum of seconds, count) of the beater's ``percolate_request_seconds`` so far."""
    page = samples(beater_url)
    total = sum(v for k, v in page.items() if "percolate_request_seconds_sum" in k)
    count = sum(v for k, v in page.items() if "percolate_request_seconds_count" in k)
    return total, count


def paced(rate: float, seconds: float, one: Any, workers: int = 8) -> None:
    """Call ``one(k)`` at ``rate`` per second for ``seconds``, whatever the answers."""
    interval = 1.0 / rate
    t0 = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        for k in range(int(seconds * rate)):
            time.sleep(max(0.0, t0 + k * interval - time.monotonic()))
            pool.submit(one, k)


def ms(xs: list[float]) -> dict[str, float | None]:
    return {"p50": pct(xs, 50), "p99": pct(xs, 99), "n": len(xs)}


def beater_round(
    cfg: argparse.Namespace,
    stack: Any,
    qs: QuerySet,
    stream: Stream,
    hitlog: HitLog,
    taillog: HitLog,
    probe: Probe,
) -> dict[str, Any]:
    sender = Sender(
        stack.beater.url,
        qs.index,
        lambda numbers, sent_at: stream.body(numbers[0], sent_at),
        docs_per_batch=1,
        first_number=cfg.next_doc,
        retry=Retry(attempts=3),
    )
    cfg.next_doc += int(cfg.seconds * cfg.rate) + 10
    on_reactor(lambda: (hitlog.reset(), taillog.reset()))
    perc0 = percolate_stats(stack.beater.url)
    probe.start()
    stats = sender.start_paced(cfg.rate, cfg.seconds, workers=8).join(cfg.seconds + 120)
    sender.close()
    want = Counter({qs.sids[0]: stats.docs})
    on_reactor(hitlog.wait_complete, want, 30.0, timeout=40)
    on_reactor(taillog.wait_complete, want, 10.0, timeout=20)
    usage = probe.usage()
    perc1 = percolate_stats(stack.beater.url)
    lat, tail_lat, got, tail_got = on_reactor(
        lambda: (list(hitlog.latencies), list(taillog.latencies), hitlog.total, taillog.total)
    )
    count = perc1[1] - perc0[1]
    return {
        "docs": stats.docs,
        "hits_wamp": got,
        "hits_tail": tail_got,
        "retries": stats.retried,
        "tail_ms": ms(tail_lat),
        "wamp_ms": ms(lat),
        "answer_ms": ms(stats.latencies),
        "beater_percolate_mean_ms": 1000 * (perc1[0] - perc0[0]) / count if count else None,
        "cpu_us_per_doc": {n: 1e6 * usage.cpu_s[n] / max(stats.docs, 1) for n in PROCESSES},
        "cpu_pct": {n: round(usage.cpu_pct(n)) for n in usage.cpu_s},
    }


def direct_round(
    cfg: argparse.Namespace, es: Any, es_url: str, qs: QuerySet, stream: Stream, probe: Probe
) -> dict[str, Any]:
    """The beater's one-document request straight to the engine, paced as the POSTs are."""
    first = cfg.next_doc
    cfg.next_doc += int(cfg.seconds * cfg.rate) + 10
    wall: list[float] = []
    raw_wall: list[float] = []
    took: list[float] = []
    hits = [0]
    lock = threading.Lock()
    # Every other document goes as bytes over a kept-alive http.client connection: the engine's
    # own HTTP round trip, without elasticsearch-py's and urllib3's share of the client time.
    where = urllib.parse.urlsplit(es_url)
    local = threading.local()

    def raw_msearch(lines: list[dict[str, Any]]) -> dict[str, Any]:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
        body = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        local.conn.request("POST", "/_msearch", body, {"Content-Type": "application/x-ndjson"})
        return orjson.loads(local.conn.getresponse().read())

    # As the beater scopes it (beater/matching/percolate.py): the covering target's queries, and those
    # registered since a minute before its last read of the targets on targets it does not know.
    scope = scope_filter((qs.index,), int(time.time() * 1000) - RECENT_SLACK_MS, (qs.index,))

    def one(k: int) -> None:
        doc = json.loads(stream.docs(first + k, time.time())[0])
        lines = [
            {"index": SHARED_0, "ignore_unavailable": True, "allow_no_indices": True},
            _search_body({"document": doc}, None, DOCUMENT_PAGE_SIZE, scope),
        ]
        t0 = time.perf_counter()
        resp = raw_msearch(lines) if k % 2 else es.msearch(body=lines)
        elapsed = time.perf_counter() - t0
        item = resp["responses"][0]
        with lock:
            (raw_wall if k % 2 else wall).append(elapsed)
            took.append(item["took"] / 1000)
            hits[0] += len(item["hits"]["hits"])

    probe.start()
    paced(cfg.rate, cfg.seconds, one)
    usage = probe.usage()
    docs = len(wall) + len(raw_wall)
    return {
        "docs": docs,
        "hits": hits[0],
        "request_ms": ms(wall),
        "raw_request_ms": ms(raw_wall),
        "took_ms": ms(took),
        "engine_cpu_us_per_doc": 1e6 * usage.cpu_s["engine"] / max(docs, 1),
        "cpu_pct": {n: round(usage.cpu_pct(n)) for n in usage.cpu_s},
    }


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_report(cfg: argparse.Namespace, rounds: list[dict[str, Any]]) -> str:
    lines = [
        f"single-document POSTs at {cfg.rate:.0f}/s, N = {cfg.queries} active queries, "
        f"{cfg.seconds:.0f} s per phase, phases alternating"
        + (f"; beater settings {' '.join(cfg.beater_env)}" if cfg.beater_env else ""),
        "",
        f"{'phase':<8} {'docs':>5} {'hits':>5} {'p50 ms':>7} {'p99 ms':>7}  what",
    ]
    for r in rounds:
        if r["phase"] == "beater":
            for key, what in (
                ("tail_ms", "POST sent -> hit read by the NDJSON tail"),
                ("wamp_ms", "POST sent -> hit at a WAMP subscriber"),
                ("answer_ms", "POST sent -> 200 answer (matches acknowledged)"),
            ):
                hits = r["hits_tail"] if key == "tail_ms" else r["hits_wamp"]
                lines.append(
                    f"{'beater':<8} {r['docs']:>5} {hits:>5} {_f(r[key]['p50']):>7} {_f(r[key]['p99']):>7}  {what}"
                )
            cpu = " ".join(f"{n} {v:.0f}" for n, v in r["cpu_us_per_doc"].items())
            lines.append(
                f"{'':<8} beater's percolate request (mean): {_f(r['beater_percolate_mean_ms'])} ms; "
                f"CPU us/doc: {cpu}; retries {r['retries']}"
            )
        else:
            lines.append(
                f"{'direct':<8} {r['request_ms']['n']:>5} {r['hits']:>5} {_f(r['request_ms']['p50']):>7} "
                f"{_f(r['request_ms']['p99']):>7}  the same _msearch straight to the engine (elasticsearch-py, "
                "half the documents)"
            )
            lines.append(
                f"{'direct':<8} {r['raw_request_ms']['n']:>5} {'':>5} {_f(r['raw_request_ms']['p50']):>7} "
                f"{_f(r['raw_request_ms']['p99']):>7}  the same bytes over a kept-alive http.client connection "
                "(the other half)"
            )
            lines.append(
                f"{'direct':<8} {r['docs']:>5} {'':>5} {_f(r['took_ms']['p50']):>7} {_f(r['took_ms']['p99']):>7}"
                f"  engine's own 'took'; engine CPU us/doc {r['engine_cpu_us_per_doc']:.0f}"
            )
    lines += ["", load_note()]
    return "\n".join(lines)


def warm_up(
    cfg: argparse.Namespace,
    stack: Any,
    es: Any,
    qs: QuerySet,
    stream: Stream,
    hitlog: HitLog,
    taillog: HitLog,
    probe: Probe,
) -> None:
    """Both phases, 15 s each, until the engine's CPU per document settles (twice in a row within
    5 % of the pair before) or ``--warmup`` seconds are spent. A fresh engine's JIT takes a core for
    minutes: measured beside it, the beater's request looked 2-4 x the direct one (2026-12-01)."""
    deadline = time.perf_counter() + cfg.warmup
    step = argparse.Namespace(**{**vars(cfg), "seconds": min(15.0, cfg.warmup)})
    cpus: list[float] = []
    while True:
        beater_round(step, stack, qs, stream, hitlog, taillog, probe)
        cpus.append(direct_round(step, es, stack.engine.url, qs, stream, probe)["engine_cpu_us_per_doc"])
        log(f"warm-up: engine CPU {cpus[-1]:.0f} us/doc")
        settled = len(cpus) >= 3 and all(
            abs(b - a) <= 0.05 * a for a, b in zip(cpus[-3:-1], cpus[-2:], strict=True)
        )
        if settled or time.perf_counter() > deadline:
            break
    cfg.next_doc = step.next_doc
    log("warmed up" if settled else f"warm-up budget of {cfg.warmup:.0f}s spent, engine not settled")


def run(cfg: argparse.Namespace, workdir: Path) -> None:
    # A shared machine can hold the engine past the default 5 s: a timeout here would only retry.
    settings = {"ESTROM_ENGINE_TIMEOUT": "30"} | dict(item.split("=", 1) for item in cfg.beater_env)
    with bench_stack(workdir, tailors=1, beater_settings=settings) as (stack, _anonymous):
        wamp = stack.client("tailor")  # subscribes before registering: see bench/compare/__main__.py
        trees = {name: process_tree(pid) for name, pid in pids(stack).items()}
        probe = Probe(trees)
        es = sync_client(stack.engine.url, timeout=60, maxsize=16)
        try:
            qs = QuerySet.make(f"one-{uuid.uuid4().hex[:6]}", cfg.queries)
            hitlog, taillog = HitLog(), HitLog()
            t0 = time.perf_counter()
            subscribe_and_register(wamp, es, qs, hitlog)
            log(f"{cfg.queries} queries subscribed and registered in {time.perf_counter() - t0:.0f}s")
            # Every document matches query 0, the one the tail follows.
            stream = Stream(base_docs(2000), [qs.tokens[0]], 1, 1)
            tails = Tails(stack.tailor.url, taillog)
            on_reactor(tails.open, [qs.sids[0]], timeout=60)
            cfg.next_doc = 0
            warm_up(cfg, stack, es, qs, stream, hitlog, taillog, probe)
            rounds: list[dict[str, Any]] = []
            for i in range(cfg.rounds):
                b = beater_round(cfg, stack, qs, stream, hitlog, taillog, probe) | {"phase": "beater"}
                log(f"round {i + 1} beater: tail p50/p99 {b['tail_ms']['p50']}/{b['tail_ms']['p99']} ms")
                d = direct_round(cfg, es, stack.engine.url, qs, stream, probe) | {"phase": "direct"}
                log(f"round {i + 1} direct: p50/p99 {d['request_ms']['p50']}/{d['request_ms']['p99']} ms")
                rounds += [b, d]
            on_reactor(tails.close, timeout=30)
        finally:
            probe.stop()
            wamp.close()
    emit(format_report(cfg, rounds), cfg.out)
    if cfg.json:
        cfg.json.write_text(
            json.dumps({"config": {k: str(v) for k, v in vars(cfg).items()}, "rounds": rounds}, indent=1)
        )
        log(f"figures written to {cfg.json}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=1000, help="stored and active queries (N)")
    p.add_argument("--rate", type=float, default=100.0, help="single-document POSTs per second")
    p.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    p.add_argument(
        "--warmup",
        type=float,
        default=240.0,
        help="most seconds of warm-up (until the engine's CPU/doc settles)",
    )
    p.add_argument("--rounds", type=int, default=2, help="beater / direct phase pairs")
    p.add_argument("--beater-env", action="append", default=[], metavar="ESTROM_X=VALUE")
    p.add_argument("--out", type=Path, help="also write the table here")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    return run_in_workdir("single-doc", lambda workdir: run(cfg, workdir), cfg.keep)


if __name__ == "__main__":
    sys.exit(main())
