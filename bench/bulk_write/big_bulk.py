"""One large bulk through the beater: what it does to the beater's resident memory."""

from __future__ import annotations

import argparse
import http.client
import json
import time
import urllib.parse

from bench.bulk_write.bulk_requests import bulk_body
from devstack.metrics_page import metric


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
