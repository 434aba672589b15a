"""Bulk writes through estrom against the same bulk writes straight to the engine, in one run.

``python -m bench.bulk_write [--engine-url URL] [--modes plain,filter,pipeline] [--requests N]
[--docs D] [--block B] [--no-drain] [--big-mb MB]`` (``scripts/bench bulk ...``)

Starts a router, a beater and a tailor on free ports (and an engine, unless
``--engine-url`` names one), and for each mode two indices of the same
shape, one written straight to the engine (direct), one through the
beater's ``/_bulk`` (through), with one live tail per mode on its through
index matching a tenth of the documents. The modes are the ways shippers
write:

- ``plain``: ``POST /_bulk``;
- ``filter``: ``POST /_bulk?filter_path=errors,items.*.error,items.*.status``,
  what Logstash and libbeat (Filebeat) send: the beater asks the engine
  for the whole answer and filters it itself;
- ``pipeline``: ``POST /_bulk?pipeline=<p>``, an ingest pipeline of a
  ``set`` and a ``remove`` created on the engine first (both sides use it):
  the beater reads the stored documents back (``_mget``) and publishes
  those; the tail of this mode matches only documents as stored (the field
  the pipeline sets) and counts those without the field it removes.
  Skipped, with the reason, on an engine without those processors.

The ``N`` requests per side and mode go in blocks: each mode in turn sends
``B`` bulks of ``D`` documents direct, then ``B`` through, over one
persistent connection per side and mode (as a shipper keeps one), so all
sides see the same machine within seconds of each other. After each block
through, the run waits until the beater's queue is empty (every stored
document percolated and published): the next block direct then runs on an
engine free of estrom's work, and that wait is charged to the through side
as the part of its percolation its own requests did not overlap.
``--no-drain`` leaves the wait out (with ``--block 1``: strict alternation,
as this script did first): each block's percolation then runs during the
next block direct, which it slows, and the ratio flatters estrom.

Prints per mode the throughput of each side, through both as the shipper
sees it (answered) and including the wait (published), their ratios to
direct (the goal is 0.8 or better: printed, never asserted), the latency per
request (p50, p99) and the extra latency estrom adds (paired, through -
direct), the hits each tail received of those expected and what the beater
could not publish; for the pipeline mode, what the read-back costs per
document. ``--big-mb`` then sends one large bulk through and prints the
beater's resident memory before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import bench_env
from bench.measure import cpu_seconds, machine_busy_seconds, process_tree
from devstack.metrics_page import metric
from devstack.stack import Stack

#: Logstash's and libbeat's ``filter_path`` on every bulk.
SHIPPER_FILTER = "errors,items.*.error,items.*.status"
MODES = ("plain", "filter", "pipeline")
#: Processors the pipeline mode's pipeline uses.
PROCESSORS = ("set", "remove")
#: Every index of the run: the fields the tails' queries name are mapped before the first document.
INDEX_BODY = {
    "settings": {"number_of_replicas": 0},
    "mappings": {
        "properties": {
            "level": {"type": "keyword"},
            "n": {"type": "long"},
            "message": {"type": "text"},
            "ssn": {"type": "keyword"},
            "stage": {"type": "keyword"},
        }
    },
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bulk_body(index: str, start: int, docs: int, pad: int = 200) -> bytes:
    lines = []
    for n in range(start, start + docs):
        lines.append(b'{"index":{"_index":"%s"}}' % index.encode())
        level = "error" if n % 10 == 0 else "info"
        doc = {"level": level, "n": n, "ssn": f"000-00-{n % 10000:04d}", "message": "x" * pad}
        lines.append(json.dumps(doc).encode())
    return b"\n".join(lines) + b"\n"


def matching(start: int, docs: int) -> int:
    """How many documents of ``bulk_body(_, start, docs)`` the tails match (``level:error``)."""
    return sum(1 for n in range(start, start + docs) if n % 10 == 0)


@dataclass
class Answer:
    seconds: float
    size: int
    unpublished: int


class Poster:
    """One persistent connection, as a shipper keeps one."""

    def __init__(self, url: str, query: str = "") -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        self.path = "/_bulk" + (f"?{query}" if query else "")

    def bulk(self, body: bytes) -> Answer:
        started = time.perf_counter()
        self.conn.request("POST", self.path, body, {"content-type": "application/x-ndjson"})
        resp = self.conn.getresponse()
        answer = resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != 200 or json.loads(answer).get("errors") is not False:
            raise RuntimeError(f"{self.path} answered {resp.status}: {answer[:300]!r}")
        return Answer(elapsed, len(answer), int(resp.getheader("X-Estrom-Unpublished") or 0))


def engine_call(engine_url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        engine_url + path, method=method, data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


def engine_name(engine_url: str) -> str:
    version = engine_call(engine_url, "GET", "/")["version"]
    return f"{version.get('distribution', 'elasticsearch')} {version['number']}"


def missing_processors(engine_url: str) -> list[str]:
    """The processors of ``PROCESSORS`` some node of the engine does not run."""
    nodes = engine_call(engine_url, "GET", "/_nodes/ingest")["nodes"]
    missing: set[str] = set()
    for node in nodes.values():
        have = {p["type"] for p in node.get("ingest", {}).get("processors", [])}
        missing |= set(PROCESSORS) - have
    return sorted(missing)


class QueueWatch:
    """The beater's ``estrom_beater_queue_documents`` (stored, not yet published), over one connection."""

    NAME = b"estrom_beater_queue_documents "

    def __init__(self, beater_url: str) -> None:
        parts = urllib.parse.urlsplit(beater_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def queued(self) -> float:
        self.conn.request("GET", "/metrics")
        for line in self.conn.getresponse().read().splitlines():
            if line.startswith(self.NAME):
                return float(line.split()[1])
        raise RuntimeError("the beater's /metrics has no estrom_beater_queue_documents")

    def drain(self, timeout: float = 300.0) -> float:
        """Seconds until every document stored through the beater is percolated and published."""
        started = time.perf_counter()
        while self.queued() > 0:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"the beater's queue did not empty in {timeout:.0f} s")
            time.sleep(0.005)
        return time.perf_counter() - started


#: The parts whose CPU is counted, in the order printed; "others": the rest of the machine meanwhile.
PARTS = ("engine", "beater", "router", "tailor")


class CpuMeter:
    """CPU seconds of each part's processes, and of everything else on the machine, from /proc."""

    def __init__(self, trees: dict[str, list[int]]) -> None:
        self.trees = trees

    def now(self) -> dict[str, float]:
        used = {name: cpu_seconds(pids) for name, pids in self.trees.items()}
        used["others"] = machine_busy_seconds() - sum(used.values())
        return used

    @staticmethod
    def add(into: dict[str, float], before: dict[str, float], after: dict[str, float]) -> None:
        for name, value in after.items():
            into[name] = into.get(name, 0.0) + value - before[name]


def refresh_count(engine_url: str, index: str) -> int:
    """Refreshes of the index's primaries so far (the engine's own, and those a realtime get forced)."""
    stats = engine_call(engine_url, "GET", f"/{index}/_stats/refresh")
    return int(stats["_all"]["primaries"]["refresh"]["total"])


def percolate_metrics(beater_url: str) -> tuple[float, float]:
    """The beater's percolate requests to the engine so far, and the seconds they took."""
    name = "estrom_beater_percolate_request_seconds"
    return metric(beater_url, f"{name}_count"), metric(beater_url, f"{name}_sum")


def read_back_metrics(beater_url: str) -> tuple[float, float, float]:
    """The beater's documents read back, seconds spent and ``_mget`` chunks, so far."""
    return (
        metric(beater_url, "estrom_beater_bulk_read_back_total"),
        metric(beater_url, "estrom_beater_bulk_read_back_seconds_sum"),
        metric(beater_url, "estrom_beater_bulk_read_back_seconds_count"),
    )


@dataclass
class Tail:
    """One NDJSON tail on a mode's through index; counts its hits as they arrive."""

    url: str
    hits: int = 0
    #: hits holding the field the pipeline sets and not the one it removes
    as_stored: int = 0
    gaps: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with urllib.request.urlopen(self.url, timeout=600) as resp:
            for line in resp:
                if self.stop.is_set():
                    return
                if line.startswith(b'{"gap"'):
                    self.gaps += 1
                if not line.startswith(b'{"_index"'):
                    continue
                self.hits += 1
                source = json.loads(line).get("_source", {})
                if source.get("stage") == "ingested" and "ssn" not in source:
                    self.as_stored += 1


@dataclass
class Mode:
    name: str
    query: str
    direct_index: str
    through_index: str
    tail: Tail
    direct: Poster
    through: Poster
    expected: int = 0
    skipped: str = ""
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"direct": [], "through": []})
    sizes: dict[str, list[int]] = field(default_factory=lambda: {"direct": [], "through": []})
    #: after each block through: seconds until the beater's queue was empty
    drains: list[float] = field(default_factory=list)
    #: side -> part -> CPU seconds while that side's blocks ran (through: with the waits)
    cpu: dict[str, dict[str, float]] = field(default_factory=lambda: {"direct": {}, "through": {}})
    #: the beater's percolate requests and their seconds while the blocks through ran (and their waits)
    percolate: list[float] = field(default_factory=lambda: [0.0, 0.0])
    unpublished: int = 0

    def indices(self) -> dict[str, str]:
        return {"direct": self.direct_index, "through": self.through_index}

    def send(self, side: str, start: int, docs: int) -> None:
        poster = self.direct if side == "direct" else self.through
        index = self.direct_index if side == "direct" else self.through_index
        answer = poster.bulk(bulk_body(index, start, docs))
        self.latencies[side].append(answer.seconds)
        self.sizes[side].append(answer.size)
        if side == "through":
            self.unpublished += answer.unpublished
            self.expected += matching(start, docs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine-url", default="", help="an engine running elsewhere (default: start one)")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)} (default: all)"
    )
    parser.add_argument("--requests", type=int, default=40, help="bulk requests per side and mode")
    parser.add_argument("--docs", type=int, default=500, help="documents per bulk request")
    parser.add_argument(
        "--block", type=int, default=10, help="requests per side in a row before the other side's turn"
    )
    parser.add_argument(
        "--no-drain", action="store_true", help="no wait for the beater's queue after each block through"
    )
    parser.add_argument("--big-mb", type=int, default=0, help="size of one large bulk through (0: none)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        parser.error(f"--modes takes {', '.join(MODES)}, not {args.modes!r}")
    if args.requests % args.block:
        parser.error("--requests must be a multiple of --block")

    work = Path(tempfile.mkdtemp(prefix="estrom-bench-bulk-"))
    work.chmod(0o755)
    engines = [args.engine_url] if args.engine_url else []
    settings = {"ESTROM_ENGINE_TIMEOUT": "60"}
    with Stack(work, env=bench_env(), engine_urls=engines, settings=settings) as stack:
        stack.up(beaters=1, tailors=1)
        trees = {
            "beater": process_tree(stack.beater.pid),
            "router": process_tree(stack.router.pid),
            "tailor": process_tree(stack.tailor.pid),
        }
        if stack.engine.nodes:  # not one running elsewhere
            trees["engine"] = [
                p for n in stack.engine.nodes if n.process for p in process_tree(n.process.pid)
            ]
        return run(args, modes, stack.engine.url, stack.beater.url, stack.tailor.url, CpuMeter(trees))


def prepare(
    modes: list[str], engine_url: str, beater_url: str, tailor_url: str, tag: str, docs: int
) -> tuple[list[Mode], str | None]:
    """Indices, the pipeline where it can run, one tail per mode, everything warmed."""
    pipeline = None
    skipped = ""
    if "pipeline" in modes:
        missing = missing_processors(engine_url)
        if missing:
            skipped = (
                f"the engine's nodes do not run the {', '.join(missing)} processor(s) (GET /_nodes/ingest)"
            )
        else:
            pipeline = f"bench-bulk-{tag}"
            engine_call(
                engine_url,
                "PUT",
                f"/_ingest/pipeline/{pipeline}",
                {
                    "description": "bench/bulk_write.py: one field set, one removed",
                    "processors": [
                        {"set": {"field": "stage", "value": "ingested"}},
                        {"remove": {"field": "ssn"}},
                    ],
                },
            )
    out = []
    for name in modes:
        direct_index, through_index = f"bench-bulk-{name}-direct-{tag}", f"bench-bulk-{name}-through-{tag}"
        query_string = {
            "plain": "",
            "filter": f"filter_path={SHIPPER_FILTER}",
            "pipeline": f"pipeline={pipeline}",
        }
        q = "level:error AND stage:ingested" if name == "pipeline" else "level:error"
        params = urllib.parse.urlencode({"i": through_index, "q": q, "format": "ndjson"})
        mode = Mode(
            name,
            query_string[name],
            direct_index,
            through_index,
            Tail(f"{tailor_url}/api/v0.1/docs?{params}"),
            Poster(engine_url, query_string[name]),
            Poster(beater_url, query_string[name]),
        )
        if name == "pipeline" and skipped:
            mode.skipped = skipped
        out.append(mode)
    active = [m for m in out if not m.skipped]
    for mode in active:
        for index in (mode.direct_index, mode.through_index):
            engine_call(engine_url, "PUT", f"/{index}", INDEX_BODY)
        mode.tail.start()
    deadline = time.monotonic() + 60
    while metric(tailor_url, "estrom_tailor_subscriptions") < len(active):
        if time.monotonic() > deadline:
            raise RuntimeError("the tails did not subscribe")
        time.sleep(0.1)
    # Warm every path (connections, first writes into each index, the engine's parsers, the pipeline).
    for mode in active:
        for side in ("direct", "through"):
            mode.send(side, 10**9, docs)
        mode.latencies = {"direct": [], "through": []}
        mode.sizes = {"direct": [], "through": []}
    return out, pipeline


def run(
    args: argparse.Namespace,
    modes: list[str],
    engine_url: str,
    beater_url: str,
    tailor_url: str,
    cpu: CpuMeter,
) -> int:
    tag = uuid.uuid4().hex[:8]
    wait = "no wait" if args.no_drain else "then a wait for the beater's queue to empty"
    print(
        f"engine {engine_name(engine_url)}; {args.requests} requests of {args.docs} documents per side and"
        f" mode, {args.block} in a row per side ({wait}), modes interleaved;"
        f" load average {os.getloadavg()[0]:.1f} at the start"
    )
    all_modes, pipeline = prepare(modes, engine_url, beater_url, tailor_url, tag, args.docs)
    active = [m for m in all_modes if not m.skipped]

    queue = QueueWatch(beater_url)
    queue.drain()
    read_before = read_back_metrics(beater_url)
    for r in range(args.requests // args.block):
        for mode in active:
            for side in ("direct", "through"):
                percolated = percolate_metrics(beater_url) if side == "through" else (0.0, 0.0)
                before = cpu.now()
                for b in range(args.block):
                    mode.send(side, (r * args.block + b) * args.docs, args.docs)
                if side == "through" and not args.no_drain:
                    # The next block direct runs on an engine and a machine free of estrom's work.
                    mode.drains.append(queue.drain())
                cpu.add(mode.cpu[side], before, cpu.now())
                if side == "through":
                    after = percolate_metrics(beater_url)
                    mode.percolate = [
                        m + a - b for m, a, b in zip(mode.percolate, after, percolated, strict=True)
                    ]
    read_after = read_back_metrics(beater_url)
    deadline = time.monotonic() + 120
    while any(m.tail.hits < m.expected for m in active) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # late duplicates, if any, would show as more than expected

    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    docs = args.requests * args.docs
    summary = []
    for mode in all_modes:
        print()
        path = "/_bulk" + (f"?{mode.query}" if mode.query else "")
        if mode.skipped:
            print(f"mode {mode.name}: skipped: {mode.skipped}")
            summary.append(f"  {mode.name:8}  skipped")
            continue
        print(f"mode {mode.name}: POST {path}")
        lat = mode.latencies
        for side, values in lat.items():
            print(
                f"  {side:8} {docs / sum(values):9.0f} docs/s   p50 {percentile(values, 0.5) * 1000:7.1f} ms"
                f"   p99 {percentile(values, 0.99) * 1000:7.1f} ms"
                f"   answer {statistics.mean(mode.sizes[side]) / 1000:6.1f} kB"
            )
        direct = docs / sum(lat["direct"])
        answered = docs / sum(lat["through"])
        published = docs / (sum(lat["through"]) + sum(mode.drains)) if mode.drains else float("nan")
        if mode.drains:
            print(
                f"  through, published {published:6.0f} docs/s   (the requests, and after each block of"
                f" {args.block} the wait until the beater's queue was empty:"
                f" {statistics.mean(mode.drains) * 1000:.0f} ms on average)"
            )
        ratio_pub = f"{published / direct:.2f}" if mode.drains else "-"
        pub_rate = f"{published:.0f}" if mode.drains else "-"
        print(
            f"  ratio    {answered / direct:.2f} x direct answered, {ratio_pub} x direct published"
            " (goal: 0.8 or more)"
        )
        extra = [t - d for t, d in zip(lat["through"], lat["direct"], strict=True)]
        print(
            f"  extra per request (through - direct, paired): p50 {statistics.median(extra) * 1000:.1f} ms,"
            f" p99 {percentile(extra, 0.99) * 1000:.1f} ms"
        )
        stored = (
            f", {mode.tail.as_stored} as stored (field set, field removed)" if mode.name == "pipeline" else ""
        )
        gaps = f", {mode.tail.gaps} gap(s)" if mode.tail.gaps else ""
        print(
            f"  tail hits received {mode.tail.hits} of {mode.expected} expected{stored}{gaps};"
            f" unpublished (X-Estrom-Unpublished) {mode.unpublished}"
        )
        refreshes = {side: refresh_count(engine_url, index) for side, index in mode.indices().items()}
        print(
            f"  engine refreshes of the index: direct {refreshes['direct']}, through {refreshes['through']}"
        )
        for side in ("direct", "through"):
            parts = [p for p in (*PARTS, "others") if p in mode.cpu[side]]
            print(
                f"  CPU ms per 1000 documents, {side}: "
                + ", ".join(f"{p} {round(mode.cpu[side][p] / docs * 1e6):d}" for p in parts)
            )
        requests, seconds = mode.percolate
        if requests:
            print(
                f"  percolation (beater's percolate_request_seconds): {requests:.0f} requests to the engine,"
                f" {seconds / docs * 1e6:.0f} ms per 1000 documents (their durations summed; several run at once)"
            )
        if mode.name == "pipeline":
            report_read_back(args, mode, all_modes, read_before, read_after)
        summary.append(
            f"  {mode.name:8} {direct:7.0f} {answered:9.0f} {pub_rate:>10}"
            f" {answered / direct:6.2f} {ratio_pub:>6}"
            f" {statistics.median(extra) * 1000:7.1f} {percentile(extra, 0.99) * 1000:7.1f}"
            f"   {mode.tail.hits}/{mode.expected}"
        )
    print()
    print("summary (docs/s; ratios x direct; extra ms per request, through - direct)")
    print("  mode      direct  answered  published  ratio  r.pub  x p50   x p99    hits")
    print("\n".join(summary))

    if args.big_mb:
        big_bulk(args, beater_url, active[0].through_index if active else f"bench-bulk-big-{tag}")
    for mode in active:
        mode.tail.stop.set()
    deadline = time.monotonic() + 120  # nothing left in percolation before the indices go
    while metric(beater_url, "estrom_beater_queue_documents") > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    for mode in active:
        for index in (mode.direct_index, mode.through_index):
            engine_call(engine_url, "DELETE", f"/{index}")
    if pipeline:
        engine_call(engine_url, "DELETE", f"/_ingest/pipeline/{pipeline}")
    return 0


def report_read_back(
    args: argparse.Namespace,
    mode: Mode,
    all_modes: list[Mode],
    before: tuple[float, float, float],
    after: tuple[float, float, float],
) -> None:
    """What the pipeline mode's read-back costs per document, by timing and by the beater's metrics."""
    docs = args.requests * args.docs
    read, seconds, chunks = (a - b for a, b in zip(after, before, strict=True))
    if read:
        print(
            f"  read back (beater's metrics): {read:.0f} documents in {chunks:.0f} _mget,"
            f" {seconds / read * 1e6:.0f} us per document ({seconds / chunks * 1000:.1f} ms per _mget)"
        )
    else:
        print("  read back (beater's metrics): none counted")
    plain = next((m for m in all_modes if m.name == "plain" and not m.skipped), None)
    if plain is None:
        print("  extra per document with the pipeline: needs the plain mode in the same run")
        return
    through = (sum(mode.latencies["through"]) - sum(plain.latencies["through"])) / docs
    net = through - (sum(mode.latencies["direct"]) - sum(plain.latencies["direct"])) / docs
    print(
        f"  extra per document with the pipeline: through {through * 1e6:.0f} us"
        f" (through with pipeline - through plain); estrom's part {net * 1e6:.0f} us"
        " (the same, less direct with pipeline - direct plain: the engine's own pipeline cost)"
    )


def big_bulk(args: argparse.Namespace, beater_url: str, index: str) -> None:
    rss_before = metric(beater_url, "process_resident_memory_bytes")
    per_doc = len(bulk_body(index, 10**8, 1, pad=900))
    docs = args.big_mb * 1024 * 1024 // per_doc
    big = bulk_body(index, 10**8, docs, pad=900)
    parts = urllib.parse.urlsplit(beater_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/_bulk", big, {"content-type": "application/x-ndjson"})
    resp = conn.getresponse()
    answer = resp.read()
    elapsed = time.perf_counter() - t0
    del big
    rss_after = metric(beater_url, "process_resident_memory_bytes")
    try:
        errors = json.loads(answer).get("errors")
    except ValueError:
        errors = "?"
    print()
    print(
        f"one bulk of {args.big_mb} MB ({docs} documents): engine answered {resp.status} "
        f"(errors={errors}) in {elapsed:.1f} s; beater RSS {rss_before / 2**20:.0f} MB before, "
        f"{rss_after / 2**20:.0f} MB after"
    )


if __name__ == "__main__":
    raise SystemExit(main())
