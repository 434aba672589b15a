"""Bulk writes through estrom against the same bulk writes straight to the engine, in one run.

``python -m bench.bulk_write [--engine-url URL] [--requests N] [--docs D]``

Starts a router, a beater and a tailor on free ports (and an engine, unless
``--engine-url`` names one), opens one live tail matching about a tenth of
the documents, then sends ``N`` bulk requests of ``D`` documents each,
alternating direct (engine) and through (beater's ``/_bulk``) so both see
the same machine. Prints throughput of each, their ratio, the latency per
request (p50, p99) and the extra latency estrom adds, the hits the tail
received, and the beater's resident memory before and after one bulk of
about 100 MB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from devstack.stack import Stack


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bulk_body(index: str, start: int, docs: int, pad: int = 200) -> bytes:
    lines = []
    for n in range(start, start + docs):
        lines.append(b'{"index":{"_index":"%s"}}' % index.encode())
        level = "error" if n % 10 == 0 else "info"
        lines.append(json.dumps({"level": level, "n": n, "message": "x" * pad}).encode())
    return b"\n".join(lines) + b"\n"


class Poster:
    """One persistent connection, as a shipper keeps one."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)

    def bulk(self, body: bytes) -> float:
        started = time.perf_counter()
        self.conn.request("POST", "/_bulk", body, {"content-type": "application/x-ndjson"})
        resp = self.conn.getresponse()
        answer = resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != 200 or json.loads(answer)["errors"]:
            raise RuntimeError(f"bulk answered {resp.status}: {answer[:300]!r}")
        return elapsed


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def tail_reader(url: str, counter: list[int], stop: threading.Event) -> None:
    with urllib.request.urlopen(url, timeout=600) as resp:
        for line in resp:
            if stop.is_set():
                return
            if line.startswith(b'{"_index"'):
                counter[0] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine-url", default="")
    parser.add_argument("--requests", type=int, default=60, help="bulk requests per side")
    parser.add_argument("--docs", type=int, default=500, help="documents per bulk request")
    parser.add_argument("--big-mb", type=int, default=100, help="size of the one large bulk (0: skip)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="estrom-bench-bulk-"))
    work.chmod(0o755)
    engines = [args.engine_url] if args.engine_url else []
    with Stack(work, engine_urls=engines, settings={"ESTROM_ENGINE_TIMEOUT": "60"}) as stack:
        stack.up(beaters=1, tailors=1)
        return run(args, stack.engine.url, stack.beaters[0].url, stack.tailors[0].url)


def run(args: argparse.Namespace, engine_url: str, beater_url: str, tailor_url: str) -> int:
    tag = uuid.uuid4().hex[:8]
    through_index, direct_index = f"bench-bulk-through-{tag}", f"bench-bulk-direct-{tag}"
    for index in (through_index, direct_index):
        req = urllib.request.Request(
            f"{engine_url}/{index}",
            method="PUT",
            data=b'{"settings":{"number_of_replicas":0}}',
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=60).read()
    received = [0]
    stop = threading.Event()
    query = urllib.parse.urlencode({"i": through_index, "q": "level:error", "format": "ndjson"})
    reader = threading.Thread(
        target=tail_reader, args=(f"{tailor_url}/api/v0.1/docs?{query}", received, stop), daemon=True
    )
    reader.start()
    deadline = time.monotonic() + 30
    while metric(tailor_url, "estrom_tailor_subscriptions") < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the tail did not subscribe")
        time.sleep(0.1)

    direct, through = Poster(engine_url), Poster(beater_url)
    # Warm both paths (connections, index creation, JIT of the engine's parsers).
    direct.bulk(bulk_body(direct_index, 10**9, args.docs))
    through.bulk(bulk_body(through_index, 10**9, args.docs))
    latencies: dict[str, list[float]] = {"direct": [], "through": []}
    for r in range(args.requests):
        start = r * args.docs
        latencies["direct"].append(direct.bulk(bulk_body(direct_index, start, args.docs)))
        latencies["through"].append(through.bulk(bulk_body(through_index, start, args.docs)))
    expected = sum(1 for n in range(args.requests * args.docs) if n % 10 == 0) + args.docs // 10
    deadline = time.monotonic() + 60
    while received[0] < expected and time.monotonic() < deadline:
        time.sleep(0.1)

    print(f"bulk write, {args.requests} requests of {args.docs} documents per side, alternating")
    rates = {}
    for side, values in latencies.items():
        rates[side] = args.requests * args.docs / sum(values)
        print(
            f"  {side:8} {rates[side]:9.0f} docs/s   p50 {percentile(values, 0.5) * 1000:7.1f} ms"
            f"   p99 {percentile(values, 0.99) * 1000:7.1f} ms"
        )
    extra = [t - d for t, d in zip(latencies["through"], latencies["direct"], strict=True)]
    print(f"  ratio    {rates['through'] / rates['direct']:.2f} x direct")
    print(
        f"  extra per request (through - direct, paired): p50 {statistics.median(extra) * 1000:.1f} ms,"
        f" p99 {percentile(extra, 0.99) * 1000:.1f} ms"
    )
    print(f"  tail hits received {received[0]} of {expected} expected")

    if args.big_mb:
        rss_before = metric(beater_url, "process_resident_memory_bytes")
        per_doc = len(bulk_body(through_index, 10**8, 1, pad=900))
        docs = args.big_mb * 1024 * 1024 // per_doc
        big = bulk_body(through_index, 10**8, docs, pad=900)
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
        print(
            f"one bulk of {args.big_mb} MB ({docs} documents): engine answered {resp.status} "
            f"(errors={errors}) in {elapsed:.1f} s; beater RSS {rss_before / 2**20:.0f} MB before, "
            f"{rss_after / 2**20:.0f} MB after"
        )
    stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
