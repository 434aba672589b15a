"""What the shared percolator index costs the engine: its scoped request against a per-target copy.

Why this exists: since issue 13 every target's queries live in one shared
percolator index and the beater scopes each percolate request to the
covering targets (``beater.percolate.scope_filter``). Before, each target had
an index of its own and the request had no scope. Both cost the engine the
same documents; this says whether the scope or the shared index costs more.
It stores N queries of one target through a real stack, copies them into an
index of their own with the same mapping, and percolates the same batches
four ways, in rounds, the four always adjacent:

- ``shared+scope``: the beater's request (its covering target, and the
  recent queries of targets it does not know);
- ``shared+terms``: only the covering target's ``terms`` filter;
- ``shared``: no scope at all (one target stored, so the same matches);
- ``per-target``: the copy, no scope (the design before issue 13).

Every variant must find the same matches per batch; the report says so.
Nothing is asserted on time.

Usage::

    .venv/bin/python -m bench.shared_index [--queries 1000] [--rounds 7] [--seconds 8]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from beater.matching.search import scope_filter
from beater.store.targets import RECENT_SLACK_MS
from bench.harness import bench_main, bench_parser, bench_stack, emit, load_note, log
from bench.receivers import HitLog
from bench.single_doc import SHARED_0, subscribe_and_register
from bench.workload import QuerySet, Stream, base_docs
from common.engine import sync_client

COPY = "estrom-bench-per-target"
BATCH = 500
SENDERS = 4


def copy_target(es: Any, target: str) -> int:
    """The target's stored queries into an index of their own, with the shared index's mapping."""
    mapping = es.indices.get_mapping(index=SHARED_0)[SHARED_0]["mappings"]
    es.indices.create(index=COPY, body={"mappings": mapping, "settings": {"number_of_replicas": 0}})
    hits = es.search(index=SHARED_0, body={"query": {"term": {"estrom_target": target}}, "size": 10_000})
    lines: list[dict[str, Any]] = []
    for hit in hits["hits"]["hits"]:
        lines += [{"index": {"_index": COPY, "_id": hit["_id"]}}, hit["_source"]]
    es.bulk(body=lines, refresh=True, request_timeout=300)
    return len(lines) // 2


def percolate_for(
    es: Any, stream: Stream, index: str, scope: dict[str, Any] | None, seconds: float, first: int
) -> dict[str, float]:
    """``SENDERS`` threads percolating ``BATCH``-document batches for ``seconds``: docs/s, matches/batch, took."""
    deadline = time.perf_counter() + seconds
    took: list[int] = []

    def sender(i: int) -> tuple[int, int]:
        batches = matches = 0
        while time.perf_counter() < deadline:
            body = stream.percolate_body(first + i * 100_000 + batches, scope)
            resp = es.search(index=index, body=body)
            took.append(resp["took"])
            matches += sum(len(h["fields"]["_percolator_document_slot"]) for h in resp["hits"]["hits"])
            batches += 1
        return batches, matches

    t0 = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as pool:
        done = list(pool.map(sender, range(SENDERS)))
    elapsed = time.perf_counter() - t0
    batches = sum(b for b, _ in done)
    return {
        "docs_per_s": batches * BATCH / elapsed,
        "matches_per_batch": sum(m for _, m in done) / max(batches, 1),
        "took_p50_ms": sorted(took)[len(took) // 2] if took else 0,
    }


def run(cfg: argparse.Namespace, workdir: Path, _started: float) -> None:
    with bench_stack(workdir) as (stack, _anonymous):
        wamp = stack.client("tailor")
        es = sync_client(stack.engine.url, timeout=120, maxsize=16)
        try:
            qs = QuerySet.make(f"shared-{uuid.uuid4().hex[:6]}", cfg.queries)
            subscribe_and_register(wamp, es, qs, HitLog())
            log(f"{copy_target(es, qs.index)} queries copied into {COPY}")
            stream = Stream(base_docs(2000), qs.tokens, 10, BATCH)
            variants = {
                "shared+scope": (
                    SHARED_0,
                    scope_filter((qs.index,), int(time.time() * 1000) - RECENT_SLACK_MS, (qs.index,)),
                ),
                "shared+terms": (SHARED_0, scope_filter((qs.index,), None)),
                "shared": (SHARED_0, None),
                "per-target": (COPY, None),
            }
            rows: list[dict[str, dict[str, float]]] = []
            for r in range(cfg.rounds):
                row = {
                    name: percolate_for(es, stream, index, scope, cfg.seconds, r * 1_000_000)
                    for name, (index, scope) in variants.items()
                }
                log(f"round {r + 1}: " + ", ".join(f"{n} {v['docs_per_s']:.0f}" for n, v in row.items()))
                rows.append(row)
        finally:
            wamp.close()
    emit(report(cfg, rows, list(variants)), cfg.out)


def report(cfg: argparse.Namespace, rows: list[dict[str, dict[str, float]]], names: list[str]) -> str:
    lines = [
        f"docs/s per variant, N = {cfg.queries} queries of one target, {BATCH}-document batches, "
        f"{SENDERS} in flight, {cfg.seconds:.0f} s each, the four adjacent in every round",
        "",
        "round " + "".join(f"{n:>14}" for n in names) + "  matches/batch (all variants)",
    ]
    for i, row in enumerate(rows, 1):
        same = {round(v["matches_per_batch"], 1) for v in row.values()}
        lines.append(
            f"{i:>5} "
            + "".join(f"{row[n]['docs_per_s']:>14.0f}" for n in names)
            + f"  {'/'.join(str(m) for m in sorted(same))}{'' if len(same) == 1 else '  DIFFER'}"
        )
    settled = rows[len(rows) // 2 :]  # the later half: the engine's JIT warms up for minutes
    lines.append("")
    lines.append(
        "later half, each variant over per-target: "
        + ", ".join(
            f"{n} {sum(r[n]['docs_per_s'] for r in settled) / sum(r['per-target']['docs_per_s'] for r in settled):.2f}"
            for n in names
        )
    )
    lines += ["", load_note()]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = bench_parser(__doc__)
    p.add_argument("--queries", type=int, default=1000, help="stored queries of the one target (N)")
    p.add_argument("--rounds", type=int, default=8, help="rounds of the four variants")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each variant's run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return bench_main("shared-index", argv, parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
