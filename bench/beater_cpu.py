"""The beater's own CPU per document, stage by stage, in one process.

Why this exists: ``scripts/bench compare`` gives the beater's CPU per
document from /proc, end to end, but not where it goes, and on a shared
2-core machine a full run takes minutes. This times the pure parts of the
hot path on the benchmark's own documents (``bench/workload.py``: one
500-document ``json_batch`` POST, percolated as two batches of 250) with
``time.process_time``, so it measures this process's CPU only, not the
neighbours'. Stages:

* ``parse``: ``beater.ingest_body.parse_ingest_body`` (decode, per-document checks;
  ``--reference``: the standard library's path, ``fast=False``);
* ``pipeline``: ``beater.pipeline.IngestPipeline`` around an engine and a router that
  answer at once (the engine with the known matches, computed in the stage: ~0.3 µs);
* ``encode``: the engine request body, as the engine client serializes it
  (``common/fast_json.py``'s serializer; ``--reference``: elasticsearch-py's own);
* ``publish``: CBOR encoding of the WAMP publish messages (one per sid).

Not covered: Twisted's HTTP parsing, the engine client's HTTP and response
decoding, autobahn's framing; ``scripts/bench compare`` has those.

Usage::

    .venv/bin/python -m bench.beater_cpu [--batches 200] [--batch 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import cbor2
from elasticsearch.serializer import JSONSerializer
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from beater.ingest.body import parse_ingest_body
from beater.ingest.pipeline import IngestPipeline
from beater.matching.percolate import PercolateResult
from beater.matching.search import search_body as _search_body
from beater.publishing.publisher import group_by_sid
from bench.workload import QuerySet, Stream, base_docs
from common.fast_json import EngineSerializer
from common.hits import make_hit

ENGINE_BATCH = 250  # ESTROM_BATCH_SIZE's default


def engine_dumps(body: Any, serializer: Any) -> bytes:
    """What the engine client's serializer and connection make of a dict body."""
    return serializer.dumps(body).encode("utf-8", "surrogatepass")


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """CPU seconds of this process per call of ``fn``, best of three rounds."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(repeat):
            fn()
        best = min(best, (time.process_time() - t0) / repeat)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=100, help="POST bodies timed per round")
    p.add_argument("--batch", type=int, default=500, help="documents per POST (B)")
    p.add_argument(
        "--reference",
        action="store_true",
        help="the standard library's paths (parse_ingest_body(fast=False), elasticsearch-py's serializer)",
    )
    cfg = p.parse_args(argv)
    serializer = JSONSerializer() if cfg.reference else EngineSerializer()
    qs = QuerySet.make("cpu-bench", 1000)
    stream = Stream(base_docs(5000), qs.tokens, 10, cfg.batch)
    bodies = [stream.body(k, time.time()) for k in range(cfg.batches)]
    parsed = [parse_ingest_body(raw, "application/json") for raw in bodies]
    sid_of = qs.sid_of()

    def parse() -> None:
        for raw in bodies:
            parse_ingest_body(raw, "application/json", fast=not cfg.reference)

    batches = [
        [doc for _, doc in body.docs][i : i + ENGINE_BATCH]
        for body in parsed
        for i in range(0, cfg.batch, ENGINE_BATCH)
    ]
    matches = [[[sid_of[d["slot"]]] if d["slot"] in sid_of else [] for d in docs] for docs in batches]

    def encode() -> None:
        for docs in batches:
            engine_dumps(_search_body({"documents": docs}), serializer)

    def pipeline() -> None:
        """Every POST through IngestPipeline: an engine that answers at once with the known matches."""

        async def percolate(index: str, docs: list[dict[str, Any]]) -> PercolateResult:
            sids = [[sid_of[d["slot"]]] if d["slot"] in sid_of else [] for d in docs]
            return PercolateResult(matches=sids)

        def publish(grouped: dict[str, list[Any]]) -> Any:
            return succeed(sum(len(h) for h in grouped.values()))

        p = IngestPipeline(
            percolate,
            publish,
            clock=Clock(),
            batch_size=ENGINE_BATCH,
            linger=0.005,
            max_queued=10**7,
            concurrency=4,
        )
        for body in parsed:
            p.submit("cpu-bench", body.docs, body.rejected)

    grouped = [
        group_by_sid([make_hit("cpu-bench", d) for d in docs], m)
        for docs, m in zip(batches, matches, strict=True)
    ]

    def publish() -> None:
        for g in grouped:
            for n, (sid, hs) in enumerate(g.items()):
                cbor2.dumps([16, n, {"acknowledge": True}, f"docs-for-{sid}", hs])

    docs = cfg.batches * cfg.batch
    total = 0.0
    print(f"{'stage':<10} {'us/doc':>8}" + ("  (reference: standard library paths)" if cfg.reference else ""))
    for name, fn in (
        ("parse", parse),
        ("pipeline", pipeline),
        ("encode", encode),
        ("publish", publish),
    ):
        us = 1e6 * timed(fn, 1) / docs
        total += us
        print(f"{name:<10} {us:>8.2f}")
    print(f"{'total':<10} {total:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
