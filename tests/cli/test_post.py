"""``estrom post`` against a real beater: totals, rejected positions, retries of 429."""

from __future__ import annotations

import json
import threading

import pytest

from devstack.metrics_page import metric
from tests.http_client import ingest
from tests.tcp_proxy import TCPProxy
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_ndjson_file_with_one_bad_line(cli, beater, wamp, index, tmp_path):
    sid = wamp.call("com.estrom.register_query", index, "level:error")
    sink = wamp.subscribe(f"docs-for-{sid}")
    lines = [
        json.dumps({"level": "error", "n": 1}),
        json.dumps({"level": "info", "n": 2}),
        "{not json",
        "",
        json.dumps({"level": "error", "n": 4}),
        json.dumps({"level": "info", "n": 5}),
    ]
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(lines) + "\n")

    post = cli("post", index, str(events), "--batch", "2", "--beater", beater.url)
    assert post.wait() == 0
    assert post.out_lines[0] == "accepted 4, published 2, rejected 1 (3 requests, 0 retries)"
    assert post.out_lines[1].startswith("rejected line 3: line is not JSON")
    assert [h["_source"]["n"] for h in sink.wait_for_count(2)] == [1, 4]


def test_json_array_from_stdin(cli, beater, index):
    docs = [{"n": i} for i in range(7)] + [42]
    post = cli("post", index, "-", "--batch", "3", "--beater", beater.url, stdin=json.dumps(docs).encode())
    assert post.wait() == 0
    assert post.out_lines == [
        "accepted 7, published 0, rejected 1 (3 requests, 0 retries)",
        "rejected item 7: item is not a JSON object but int",
    ]


def test_unreachable_beater_is_exit_1(cli, index):
    post = cli("post", index, "-", "--beater", "http://127.0.0.1:1", stdin=b'{"a": 1}\n')
    assert post.wait() == 1
    assert post.err_lines == [
        "estrom: cannot reach the beater at http://127.0.0.1:1: [Errno 111] Connection refused"
    ]


def test_token_is_sent(cli, start_beater, index):
    guarded = start_beater(ESTROM_INGEST_TOKEN="sesame")
    refused = cli("post", index, "-", "--beater", guarded.url, stdin=b'{"a": 1}\n')
    assert refused.wait() == 1
    assert refused.err_lines[0].startswith("estrom: the beater refused a batch: 401")
    allowed = cli(
        "post", index, "-", "--beater", guarded.url, stdin=b'{"a": 1}\n', ESTROM_INGEST_TOKEN="sesame"
    )
    assert allowed.wait() == 0
    assert allowed.out_lines[0].startswith("accepted 1,")


def test_a_full_queue_429_is_retried_after_retry_after(cli, start_beater, engine, wamp, index):
    """A beater whose queue (3 documents) is held by a request waiting on a wedged engine.

    The command's batch gets 429, waits Retry-After, and goes through once the
    engine answers again and the queue has room.
    """
    host, port = engine.url.split("//")[1].split(":")
    proxy = TCPProxy(host, int(port))
    try:
        small = start_beater(
            engine_url=proxy.url,
            ESTROM_QUEUE_MAX_DOCS="3",
            ESTROM_ENGINE_TIMEOUT="60",
            ESTROM_RETRY_AFTER="1",
        )
        sid = wamp.call("com.estrom.register_query", index, "n:*")
        sink = wamp.subscribe(f"docs-for-{sid}")
        proxy.hang()
        held = threading.Thread(
            target=ingest, args=(small.url, index, [{"n": 1}, {"n": 2}, {"n": 3}]), daemon=True
        )
        held.start()
        wait_until(lambda: metric(small.url, "estrom_beater_queue_documents") == 3, what="queue full")

        post = cli("post", index, "-", "--beater", small.url, stdin=b'{"n": 4}\n{"n": 5}\n')
        assert "429 queue_full" in post.wait_err("retry 1/20 in 1 s")
        proxy.restore()
        assert post.wait(timeout=60) == 0
        summary = post.out_lines[0]
        assert summary.startswith("accepted 2, published 2, rejected 0 (1 requests, ")
        assert " 0 retries" not in summary
        assert {4, 5} <= {h["_source"]["n"] for h in sink.wait_for(lambda hits: len(hits) >= 2)}
        held.join(timeout=60)
    finally:
        proxy.close()
