"""Slow readers are dropped with a complete document; fast ones on the same sid get everything."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from pathlib import Path

import pytest

from devstack.metrics_page import metric
from tests.tailor.helpers import send
from tests.tailor.tail_client import Tail, docs_path
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

MAX_PENDING = 256 * 1024
DOC_BYTES = 8 * 1024
BATCH = 50
BATCHES = 80  # 32 MiB of hits: far beyond every buffer between tailor and reader


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_unread(base_url: str, params: dict) -> http.client.HTTPConnection:
    """A request whose response nobody reads, through a tiny receive window."""
    url = urllib.parse.urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((url.hostname, url.port))
    sock.settimeout(30)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.sock = sock
    conn.request("GET", docs_path(params))
    return conn


def test_slow_reader_is_dropped_fast_reader_unaffected_memory_bounded(start_tailor, beater, index):
    tailor = start_tailor(ESTROM_TAILOR_MAX_PENDING=str(MAX_PENDING))
    pid = tailor.process.process.pid
    params = {"i": index, "q": "load:on"}
    fast = Tail(tailor.url, params)
    assert fast.status == 200
    slow = open_unread(tailor.url, params)
    # Both are streaming once the tailor counts two clients.
    wait_until(lambda: metric(tailor.url, "estrom_tailor_clients") == 2, what="two clients")
    rss_before = rss_bytes(pid)
    peak = rss_before
    pad = "x" * DOC_BYTES
    sent = 0
    doc = None
    for b in range(BATCHES):
        send(beater.url, index, [{"load": "on", "n": b * BATCH + k, "pad": pad} for k in range(BATCH)])
        sent += BATCH
        # The fast reader keeps up: wait for it before sending more, so that
        # only the slow reader can be behind.
        fast.wait_hits(sent, timeout=60)
        peak = max(peak, rss_bytes(pid))
        if doc is None and metric(tailor.url, "estrom_tailor_clients_dropped_total") == 1:
            # The slow reader, reading at last (before the tailor gives up on
            # its socket), finds a complete document that says why.
            response = slow.getresponse()
            assert response.status == 200
            doc = json.loads(response.read())
            slow.close()
    assert metric(tailor.url, "estrom_tailor_clients_dropped_total") == 1
    assert metric(tailor.url, "estrom_tailor_pending_bytes") <= MAX_PENDING
    assert doc is not None
    assert doc["error"] == "slow_reader"
    assert "behind" in doc["reason"]
    assert len(doc["hits"]) < sent
    assert [h["_source"]["n"] for h in doc["hits"]] == list(range(len(doc["hits"])))
    # The backlog sat where it is counted: with the kernel's send buffer
    # capped (ESTROM_TAILOR_SEND_BUFFER) the reader is dropped long before
    # megabytes of autotuned socket buffer pile up behind it.
    behind = len(doc["hits"]) * DOC_BYTES
    assert behind < MAX_PENDING + 1024 * 1024, f"dropped {behind} bytes behind"

    hits = fast.wait_hits(sent)
    fast.close()
    assert [h["_source"]["n"] for h in hits] == list(range(sent))
    pushed = sent * DOC_BYTES
    growth = peak - rss_before
    # Had the slow reader been buffered, the tailor would hold all 32 MiB of it.
    assert growth < pushed / 4, f"tailor RSS grew {growth} bytes while {pushed} bytes were streamed"
