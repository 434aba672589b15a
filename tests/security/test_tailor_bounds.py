"""What an anonymous reader of ``public-*`` can cost a tailor and a beater, held at its bounds.

One stack (router, beater, tailor) with a readers file whose anonymous
reader may read ``public-*`` only, small quotas, a query store of its own
(so the engine's search count of it is this test's alone) and small
backfill bounds. Each test is the answer to one thing a user observed:

- tails and counts that register a query each go past the registration
  quota: 429 naming it, with Retry-After, as WAMP registrations do;
- ``describe_query`` of unknown sids reaches the engine once per
  ``ESTROM_UNKNOWN_SID_TTL``, and lookups that would search are rationed;
- slow readers of large backfills hold a bounded amount of the tailor's
  memory, are dropped and told, and leave nothing held behind them;
- tails answer CORS to the router's page, not to every page;
- a client trickling its headers is cut, a stream is not.

Callers are told apart by their source address (127.0.0.x): each test has
addresses of its own, so the quotas of one never hold another.
"""

from __future__ import annotations

import http.client as httpclient
import json
import socket
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from common.query.identity import sid_for
from devstack.handles import EngineHandle
from devstack.metrics_page import metric
from devstack.stack import Stack
from tests.http_client import Response, http, ingest
from tests.readers.stack import ReadersStack, from_address, start_readers_stack
from tests.real_stack import StartService
from tests.tailor.tail_client import Tail, docs_path
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
PUBLIC = f"public-{RUN}"
OPS = "ops-" + uuid.uuid4().hex
#: the query store of this stack only: its search count is ours (not under the default
#: "estrom-queries-", which the session's own beater would take for an older layout of its own)
PREFIX = f"estrom-bounds-{RUN}-"
BURST = 5
#: Registrations and lookups a second past the burst: one more every 10,000 s. The tests count
#: what a burst lets through, so no refill may come while they run, however slow the machine.
RATE = 0.0001
#: Longer than any test here may run: an unknown sid asked about twice is remembered between.
TTL = 3600
BUFFER = 256 * 1024
TOTAL = 1024 * 1024
#: Short: the slow readers are dropped one or two at a time as the total lets them have a page,
#: and the first dropped must still be there to be read when the last is (the tailor cuts a
#: dropped reader's connection CLOSE_GRACE, 30 s, after the drop).
STALL = 2
#: The header deadline of the tailor of the trickling test. Not the stack's: a connection idle
#: that long after its response is cut 15 s later, and a dropped slow reader's connection (its
#: last words unread) must last the whole CLOSE_GRACE instead.
IDLE = 2
#: the backfill: documents of about DOC_BYTES each
DOCS = 300
DOC_BYTES = 50 * 1024
SLOW = 10


@pytest.fixture(scope="module")
def bounds(stack: Stack, engine: EngineHandle) -> Iterator[ReadersStack]:
    s = start_readers_stack(
        stack,
        f"bounds-{RUN}",
        {
            "readers": [{"name": "ops", "token": OPS, "targets": ["public-*"]}],
            "anonymous": {"targets": ["public-*"]},
        },
        ESTROM_QUOTA_REGISTRATIONS_PER_SECOND=str(RATE),
        ESTROM_QUOTA_REGISTRATIONS_BURST=str(BURST),
        ESTROM_QUOTA_DESCRIBES_PER_SECOND=str(RATE),
        ESTROM_QUOTA_DESCRIBES_BURST=str(BURST),
        ESTROM_QUOTA_TAILS="50",
        ESTROM_UNKNOWN_SID_TTL=str(TTL),
        ESTROM_QUERY_INDEX_PREFIX=PREFIX,
        ESTROM_QUERY_SWEEP_INTERVAL="3600",
        ESTROM_TAILOR_BACKFILL_BUFFER=str(BUFFER),
        ESTROM_TAILOR_BACKFILL_TOTAL=str(TOTAL),
        ESTROM_TAILOR_BACKFILL_STALL=str(STALL),
        ESTROM_TAILOR_IDLE_TIMEOUT="3600",
    )
    try:
        yield s
    finally:
        s.stop()
        # The session's engine outlives this stack: left there, its query store would be
        # documents of any wider target's (``e*``) for the tailors that come after.
        http("DELETE", f"{engine.url}/{PREFIX}*")


def get(base_url: str, path: str, source: str, headers: dict[str, str] | None = None) -> Response:
    """A whole GET, from the loopback address ``source``."""
    url = urllib.parse.urlsplit(base_url)
    conn = httpclient.HTTPConnection(url.hostname, url.port, timeout=60, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# -- registrations: every path that registers is held by the quota ---------------------------------


def test_tails_and_counts_over_the_registration_quota_are_429(bounds: ReadersStack) -> None:
    """One registration per tail or count of a new query; past the burst: 429 naming the limit."""
    src = "127.0.0.11"
    tailor = bounds.tailor.url

    def tail(q: str, **extra: Any) -> Response:
        return get(tailor, docs_path({"i": PUBLIC, "q": q, "timeout": "0.1"}), src, **extra)

    statuses = [tail(f"m:{uuid.uuid4().hex}").status for _ in range(BURST + 10)]
    assert statuses == [200] * BURST + [429] * 10
    refused = tail(f"m:{uuid.uuid4().hex}")
    body = json.loads(refused.body)
    assert (body["error"], body["limit"], body["value"]) == (
        "quota_exceeded",
        "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND",
        RATE,
    )
    assert int(refused.headers["retry-after"]) >= 1
    counts = get(
        tailor, docs_path({"i": PUBLIC, "q": "c:1", "timeout": "0.1"}, endpoint="/api/v0.1/counts"), src
    )
    assert counts.status == 429
    assert json.loads(counts.body)["limit"] == "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND"
    # No proxy is trusted: a forwarded-for header is not another caller.
    assert tail("m:spoofed", headers={"X-Forwarded-For": "10.1.2.3"}).status == 429
    # Another identity, and another address, are not held.
    assert tail("m:ops", headers={"Authorization": f"Bearer {OPS}"}).status == 200
    assert get(tailor, docs_path({"i": PUBLIC, "q": "m:other", "timeout": "0.1"}), "127.0.0.12").status == 200
    refusals = metric(
        tailor, "estrom_tailor_reader_refusals_total", reason="ESTROM_QUOTA_REGISTRATIONS_PER_SECOND"
    )
    assert refusals == 13

    # WAMP, from an address of its own, is held by the router's bucket.
    client = from_address(bounds.router.url, bounds.router.port, "127.0.0.13")
    try:
        for i in range(BURST):
            client.call("com.estrom.register_query", PUBLIC, f"w:{i}")
        with pytest.raises(ApplicationError) as err:
            client.call("com.estrom.register_query", PUBLIC, "w:over")
        assert err.value.error == "com.estrom.error.quota_exceeded"
        assert err.value.kwargs["limit"] == "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND"
    finally:
        client.close()


# -- unknown sids: remembered, and lookups rationed -------------------------------------------------


def searches(engine: EngineHandle) -> int:
    """Searches the engine ran on this stack's query store (shard-level query phases)."""
    stats = http("GET", f"{engine.url}/{PREFIX}*/_stats/search").json()
    return int(stats["_all"]["primaries"]["search"]["query_total"])


def describe(client: Any, sid: str) -> str:
    """The error a describe_query of ``sid`` ends with ("" for an answer)."""
    try:
        client.call("com.estrom.describe_query", sid)
    except ApplicationError as err:
        return err.error
    return ""


def test_unknown_sids_reach_the_engine_once_per_ttl_and_lookups_are_rationed(
    bounds: ReadersStack, engine: EngineHandle
) -> None:
    ops = bounds.client(OPS)
    anon = from_address(bounds.router.url, bounds.router.port, "127.0.0.21")
    late = from_address(bounds.router.url, bounds.router.port, "127.0.0.23")
    try:
        ops.call("com.estrom.register_query", PUBLIC, "known:yes")  # the store exists: searches count
        wait_until(lambda: searches(engine) >= 0, what="the query store's stats")
        unknown = uuid.uuid4().hex[:16]
        before = searches(engine)
        assert [describe(anon, unknown) for _ in range(300)] == ["com.estrom.error.no_such_query"] * 300
        for _ in range(50):  # the tailor's s=: remembered by the tailor after its first ask
            resp = get(bounds.tailor.url, docs_path({"s": unknown}), "127.0.0.22")
            assert resp.status == 404
            assert json.loads(resp.body)["error"] == "no_such_query"
        assert searches(engine) - before <= 1
        assert metric(bounds.beater.url, "estrom_beater_sid_lookups_total", outcome="unknown") == 1
        assert metric(bounds.tailor.url, "estrom_tailor_sid_lookups_total", outcome="remembered") == 49

        # Lookups that would search are rationed per caller: the burst, then quota_exceeded.
        outcomes = [describe(anon, uuid.uuid4().hex[:16]) for _ in range(BURST + 3)]
        assert (
            outcomes
            == ["com.estrom.error.no_such_query"] * (BURST - 1) + ["com.estrom.error.quota_exceeded"] * 4
        )
        with pytest.raises(ApplicationError) as err:
            anon.call("com.estrom.describe_query", uuid.uuid4().hex[:16])
        assert err.value.kwargs["limit"] == "ESTROM_QUOTA_DESCRIBES_PER_SECOND"
        statuses = [
            get(bounds.tailor.url, docs_path({"s": uuid.uuid4().hex[:16]}), "127.0.0.22").status
            for _ in range(BURST + 2)
        ]
        assert statuses == [404] * (BURST - 1) + [429] * 3
        assert searches(engine) - before <= BURST * 2
        assert describe(ops, uuid.uuid4().hex[:16]) == "com.estrom.error.no_such_query"  # others are not held

        # A sid found unknown and registered since is known at once.
        sid = sid_for(PUBLIC, "late:yes")
        assert describe(late, sid) == "com.estrom.error.no_such_query"
        assert ops.call("com.estrom.register_query", PUBLIC, "late:yes") == sid
        assert late.call("com.estrom.describe_query", sid)["index"] == PUBLIC
    finally:
        for client in (ops, anon, late):
            client.close()


# -- backfills: bounded, slow readers dropped and told, nothing held after ---------------------------


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def store(engine: EngineHandle, index: str) -> None:
    """DOCS documents of DOC_BYTES, written straight into the engine, @timestamp in order of ``n``."""
    pad = "x" * DOC_BYTES
    for start in range(0, DOCS, 50):
        lines = []
        for n in range(start, min(start + 50, DOCS)):
            lines.append("{}")
            lines.append(
                json.dumps({"@timestamp": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z", "n": n, "pad": pad})
            )
        body = "\n".join(lines).replace("{}", '{"index": {}}') + "\n"
        resp = http("POST", f"{engine.url}/{index}/_bulk", body, {"content-type": "application/x-ndjson"})
        assert resp.status == 200
        assert not resp.json()["errors"]
    http("POST", f"{engine.url}/{index}/_refresh")


def open_unread(base_url: str, path: str, source: str) -> httpclient.HTTPConnection:
    """A request whose response nobody reads (yet), through a tiny receive window."""
    url = urllib.parse.urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect((url.hostname, url.port))
    sock.settimeout(60)
    conn = httpclient.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.sock = sock
    conn.request("GET", path)
    return conn


def test_slow_readers_of_large_backfills_hold_a_bounded_share_and_are_dropped(
    bounds: ReadersStack, engine: EngineHandle
) -> None:
    index = f"{PUBLIC}-backfill"
    store(engine, index)
    tailor = bounds.tailor.url
    pid = bounds.tailor.process.process.pid
    params = {"i": index, "q": "n:*", "n": DOCS, "format": "ndjson"}

    # A reader that keeps up gets every stored document, oldest first, page after page.
    fast = Tail(tailor, {**params, "limit": DOCS}, timeout=60)
    assert fast.status == 200
    assert [h["_source"]["n"] for h in fast.wait_hits(DOCS, timeout=60)] == list(range(DOCS))
    fast.close()
    wait_until(lambda: metric(tailor, "estrom_tailor_backfill_bytes") == 0, what="the fast backfill let go")

    before = rss(pid)
    peak = before
    slow = [open_unread(tailor, docs_path(params), "127.0.0.31") for _ in range(SLOW)]

    def all_dropped() -> bool:
        nonlocal peak
        peak = max(peak, rss(pid))
        held = metric(tailor, "estrom_tailor_backfill_bytes")
        assert held <= TOTAL + SLOW * DOCS * 256 + BUFFER, f"{held} bytes held for backfills"
        dropped = metric(tailor, "estrom_tailor_clients_dropped_total", reason="slow_backfill_reader")
        return dropped >= SLOW

    wait_until(all_dropped, timeout=120, what=f"{SLOW} slow backfill readers dropped")
    # Each, reading at last, finds a complete stream that says why it ended.
    for conn in slow:
        response = conn.getresponse()
        assert response.status == 200
        lines = [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]
        conn.close()
        assert lines[-1]["error"] == "slow_reader"
        assert "backfill" in lines[-1]["reason"]
        ns = [line["_source"]["n"] for line in lines if "_source" in line]
        assert ns == list(range(len(ns)))
        assert len(ns) < DOCS
    wait_until(lambda: metric(tailor, "estrom_tailor_clients") == 0, what="the slow readers gone")
    assert metric(tailor, "estrom_tailor_backfill_bytes") == 0
    assert metric(tailor, "estrom_tailor_backfills") == 0
    assert metric(tailor, "estrom_tailor_pending_bytes") == 0
    after = rss(pid)
    print(f"tailor RSS: before {before >> 20} MiB, peak {peak >> 20} MiB, after {after >> 20} MiB")
    # All of it would be 10 x 300 x 50 KB = 150 MB of documents (and more as Python objects).
    assert peak - before < 40 * 1024 * 1024, f"tailor RSS grew {peak - before} bytes"
    assert after - before < 40 * 1024 * 1024


# -- CORS and idle connections -------------------------------------------------------------------------


def test_tails_answer_cors_to_the_router_page_only(bounds: ReadersStack) -> None:
    page = f"http://127.0.0.1:{bounds.router.port}"
    path = docs_path({"i": PUBLIC, "q": "cors:yes", "timeout": "0.1"})
    resp = get(bounds.tailor.url, path, "127.0.0.41", {"Origin": page})
    assert resp.status == 200
    assert resp.headers["access-control-allow-origin"] == page
    assert resp.headers["vary"] == "Origin"
    other = get(bounds.tailor.url, path, "127.0.0.41", {"Origin": "https://elsewhere.example"})
    assert other.headers["access-control-allow-origin"] not in ("*", "https://elsewhere.example")
    local = get(bounds.tailor.url, path, "127.0.0.41", {"Origin": f"http://localhost:{bounds.router.port}"})
    assert local.headers["access-control-allow-origin"] == f"http://localhost:{bounds.router.port}"


def test_a_client_trickling_its_headers_is_cut_and_a_stream_is_not(
    bounds: ReadersStack, start_tailor: StartService
) -> None:
    index = f"{PUBLIC}-idle"
    tailor = start_tailor(
        router_url=bounds.router.service_url,
        ESTROM_READERS=str(bounds.readers_path),
        ESTROM_QUERY_INDEX_PREFIX=PREFIX,
        ESTROM_TAILOR_IDLE_TIMEOUT=str(IDLE),
    )
    stream = Tail(tailor.url, {"i": index, "q": "idle:yes", "format": "ndjson"}, timeout=60)
    assert stream.status == 200
    url = urllib.parse.urlsplit(tailor.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=60, source_address=("127.0.0.51", 0))
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.5)
        closed = False
        for i in range(120):  # one header line every half second, never the blank line
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionError:
                closed = True
                break
            sock.sendall(f"X-Slow-{i}: y\r\n".encode())
        assert closed, "the tailor kept a connection that never finished its headers"
    finally:
        sock.close()
    assert metric(tailor.url, "estrom_tailor_connections_timed_out_total") >= 1
    # The stream, silent for longer than the timeout, still carries hits.
    assert ingest(bounds.beater.url, index, {"idle": "yes", "k": 1}).status == 200
    assert stream.wait_hits(1)[0]["_source"] == {"idle": "yes", "k": 1}
    stream.close()
