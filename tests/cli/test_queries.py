"""``estrom queries``: stored queries from the engine, subscribers from the router's meta API."""

from __future__ import annotations

import json

import pytest

from tests.http_client import ingest
from tests.real_stack import SECRETS

pytestmark = pytest.mark.integration


def test_lists_a_registered_query_with_its_subscribers(cli, engine, router, beater, wamp, index):
    sid = wamp.call("com.estrom.register_query", index, "level:error AND service:api")
    sink = wamp.subscribe(f"docs-for-{sid}")
    docs = [
        {"level": "error", "service": "api"},
        {"level": "info", "service": "api"},
        {"level": "error", "service": "api", "marker": "end"},
    ]
    assert ingest(beater.url, index, docs).json()["published"] == 2
    sink.wait_for_marker("end")

    listed = cli(
        "queries",
        "-i",
        index,
        "--engine",
        engine.url,
        "--router",
        router.url,
        "--secret",
        SECRETS["ESTROM_ADMIN_SECRET"],
        "--beater",
        beater.url,
    )
    assert listed.wait() == 0
    header, columns, row = listed.out_lines
    assert header.startswith("# 1 queries; matches: hits published since the beaters started")
    assert columns.split() == ["SID", "INDEX", "ACTIVE", "SUBSCRIBERS", "MATCHES", "QUERY"]
    # Only the shared beater served this index's ingest: its counter is the whole count.
    assert row.split(None, 5) == [sid, index, "yes", "1", "2", "level:error AND service:api"]


def test_json_and_no_secret_means_unknown_subscribers(cli, engine, wamp, index):
    sid = wamp.call("com.estrom.register_query", index, {"match": {"kind": "x"}})
    # Subscribed, so that no sweep deactivates it however long the two commands take to start.
    wamp.subscribe(f"docs-for-{sid}")
    listed = cli("queries", "-i", index, "--json", ESTROM_ENGINE_URL=engine.url)
    assert listed.wait() == 0
    [query] = [json.loads(line) for line in listed.out_lines]
    assert query["sid"] == sid
    assert query["index"] == index
    assert query["subscribers"] is None

    table = cli("queries", "-i", index, "--beater", "http://127.0.0.1:9", ESTROM_ENGINE_URL=engine.url)
    assert table.wait() == 0
    assert "subscribers: '-' = unknown" in table.out_lines[0]
    assert "matches: '-' = unknown" in table.out_lines[0]
    assert table.out_lines[2].split()[:5] == [sid, index, "yes", "-", "-"]


def test_wrong_secret_is_exit_1(cli, engine, router, wamp, index):
    wamp.call("com.estrom.register_query", index, "a:b")
    listed = cli("queries", "-i", index, "--engine", engine.url, "--router", router.url, "--secret", "wrong")
    assert listed.wait() == 1
    assert listed.err_lines[-1].startswith("estrom: the router refused 'admin'")
