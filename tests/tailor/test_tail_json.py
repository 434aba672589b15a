"""The default JSON tail against real processes: live hits, framing, limit, timeout, sharing."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse

import ijson
import pytest

from devstack.metrics_page import metric
from tests.real_stack import admin_client
from tests.tailor.helpers import send
from tests.tailor.tail_client import Tail, docs_path
from tests.tailor.test_tail_backfill import bulk
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


class Read1:
    """The recipe (docs/tailor-python-recipe.md): hand ijson what has arrived, not a full buffer."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson probes the type with read(0): consume nothing
        return self.response.read1(size if size > 0 else 65536)


def test_ijson_consumer_gets_each_hit_as_it_is_ingested(tailor, beater, index):
    """The documented recipe yields every hit while the stream stays open."""
    url = urllib.parse.urlsplit(tailor.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("GET", docs_path({"i": index, "q": "level:error"}))
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("content-type") == "application/json"
    assert resp.getheader("transfer-encoding") == "chunked"
    items = ijson.items(Read1(resp), "hits.item")

    # One document at a time, each ingested only after the previous hit was
    # read: a consumer lagging one item (or one buffer) behind would block here
    # until the 30 s socket timeout and fail.
    received = []
    for i in range(3):
        send(beater.url, index, [{"level": "info", "i": i}, {"level": "error", "i": i}])
        hit = next(items)
        received.append(hit)
        assert hit == {"_index": index, "_source": {"level": "error", "i": i}}
    conn.close()
    assert [h["_source"]["i"] for h in received] == [0, 1, 2]


def test_opening_bytes_are_the_contract_and_a_prefix_closes_into_json(tailor, beater, index):
    """What ``curl -N`` shows: the exact opening, then one hit per line."""
    tail = Tail(tailor.url, {"i": index, "q": "kind:raw"})
    try:
        assert tail.status == 200
        send(beater.url, index, [{"kind": "raw", "n": 1}, {"kind": "raw", "n": 2, "_id": "x2"}])
        tail.wait_hits(2)
        raw = bytes(tail.raw)
    finally:
        tail.close()
    sid = json.loads(raw + b"]}")["subscription_id"]
    assert len(sid) == 16
    assert raw.startswith(b'{"subscription_id": "' + sid.encode() + b'", "hits": [')
    doc = json.loads(raw + b"]}")
    assert doc["hits"] == [
        {"_index": index, "_source": {"kind": "raw", "n": 1}},
        {"_index": index, "_source": {"kind": "raw", "n": 2}, "_id": "x2"},
    ]
    # Every hit sits on its own line (a heartbeat may add blank ones on a slow machine).
    assert len([line for line in raw.split(b"\n") if line.strip()]) == 3


def test_limit_ends_a_complete_document(tailor, beater, index):
    tail = Tail(tailor.url, {"i": index, "q": "n:*", "limit": 2})
    assert tail.status == 200
    send(beater.url, index, [{"n": 1}, {"n": 2}, {"n": 3}])
    doc = tail.document()
    tail.close()
    assert [h["_source"]["n"] for h in doc["hits"]] == [1, 2]
    assert "error" not in doc


def test_limit_zero_is_an_empty_document(tailor, index):
    tail = Tail(tailor.url, {"i": index, "q": "anything", "limit": 0})
    doc = tail.document()
    tail.close()
    assert doc["hits"] == []


def test_timeout_ends_a_complete_document(tailor, engine, index):
    # The point is how it ends: after a hit. A stored document backfilled (n=1) is written
    # in the turn the stream starts, before its timeout can run out, on any machine.
    bulk(engine.url, index, [{"t": "yes", "m": 1}])
    tail = Tail(tailor.url, {"i": index, "q": "t:yes", "n": 1, "timeout": 1})
    assert tail.status == 200
    doc = tail.document()
    tail.close()
    assert [(h["_index"], h["_source"]) for h in doc["hits"]] == [(index, {"t": "yes", "m": 1})]
    assert "error" not in doc


def test_heartbeat_is_whitespace(start_tailor, beater, index):
    tailor = start_tailor(ESTROM_TAILOR_HEARTBEAT="0.2")
    tail = Tail(tailor.url, {"i": index, "q": "hb:1"})
    try:
        tail.wait(lambda t: t.raw.count(b"\n") >= 3, what="three heartbeats")
        send(beater.url, index, [{"hb": 1}])
        tail.wait_hits(1)
        raw = bytes(tail.raw)
    finally:
        tail.close()
    doc = json.loads(raw + b"]}")
    assert doc["hits"] == [{"_index": index, "_source": {"hb": 1}}]


def test_two_clients_share_one_subscription_and_the_last_out_releases_it(
    tailor, beater, index, router, request
):
    query = {"match": {"color": "blue"}}
    first = Tail(tailor.url, {"i": index, "q": query})
    second = Tail(tailor.url, {"i": index, "q": query})
    assert first.status == second.status == 200
    docs = [{"color": "blue", "k": k} for k in range(5)]
    send(beater.url, index, docs[:2])
    send(beater.url, index, docs[2:])
    for tail in (first, second):
        assert [h["_source"] for h in tail.wait_hits(5)] == docs
    sid = json.loads(bytes(first.raw) + b"]}")["subscription_id"]

    # One subscriber on the router for this topic: the tailor's one session, at the sid's node.
    # The meta API (wamp.subscription.*) is not for anonymous sessions.
    wamp = admin_client(router.url_for(sid))
    request.addfinalizer(wamp.close)
    topic = f"docs-for-{sid}"
    sub_id = wamp.call("wamp.subscription.lookup", topic)
    assert sub_id is not None
    assert wamp.call("wamp.subscription.count_subscribers", sub_id) == 1

    first.close()
    # The other client keeps streaming; the subscription stays.
    send(beater.url, index, [{"color": "blue", "k": 99}])
    assert second.wait_hits(6)[-1]["_source"]["k"] == 99
    assert wamp.call("wamp.subscription.lookup", topic) == sub_id

    second.close()
    wait_until(lambda: wamp.call("wamp.subscription.lookup", topic) is None, what="router subscription gone")


def test_more_clients_of_a_held_query_cost_no_registration(tailor, beater, index):
    """A sid this tailor already subscribes to is active: later clients skip the beater round trip."""
    query = "shade:teal"
    first = Tail(tailor.url, {"i": index, "q": query})
    assert first.status == 200
    send(beater.url, index, [{"shade": "teal", "k": 0}])
    first.wait_hits(1)
    sid = json.loads(bytes(first.raw) + b"]}")["subscription_id"]
    registered = metric(beater.url, "estrom_beater_queries_registered_total")

    # The same query spelled otherwise, and the sid itself.
    more = [Tail(tailor.url, {"i": index, "q": q}) for q in (query, "  shade:teal ", "(shade:teal)")]
    more += [Tail(tailor.url, {"s": sid}) for _ in range(2)]
    assert [t.status for t in more] == [200] * 5
    send(beater.url, index, [{"shade": "teal", "k": 1}])
    for tail, expected in [(first, [0, 1]), *((t, [1]) for t in more)]:
        assert [h["_source"]["k"] for h in tail.wait_hits(len(expected))] == expected
        assert json.loads(bytes(tail.raw).split(b"[", 1)[0] + b"[]}")["subscription_id"] == sid
    assert metric(beater.url, "estrom_beater_queries_registered_total") == registered
    for tail in [first, *more]:
        tail.close()


def test_disconnect_releases_the_client_at_once(start_tailor, beater, index, wamp):
    tailor = start_tailor()
    tail = Tail(tailor.url, {"i": index, "q": "gone:yes"})
    assert tail.status == 200
    assert metric(tailor.url, "estrom_tailor_clients") == 1
    assert metric(tailor.url, "estrom_tailor_subscriptions") == 1
    tail.close()
    wait_until(lambda: metric(tailor.url, "estrom_tailor_clients") == 0, what="client released")
    wait_until(lambda: metric(tailor.url, "estrom_tailor_subscriptions") == 0, what="subscription released")
    # Publishing to the released sid reaches no one and breaks nothing.
    send(beater.url, index, [{"gone": "yes"}])
    again = Tail(tailor.url, {"i": index, "q": "gone:yes", "limit": 1})
    send(beater.url, index, [{"gone": "yes", "again": True}])
    assert again.document()["hits"] == [{"_index": index, "_source": {"gone": "yes", "again": True}}]
    again.close()


def test_many_clients_connect_and_leave_concurrently(start_tailor, beater, index):
    """Joins and leaves racing on one sid leave no client and no subscription behind."""
    tailor = start_tailor()
    errors: list[BaseException] = []

    def one(k: int) -> None:
        try:
            tail = Tail(tailor.url, {"i": index, "q": "race:on"})
            assert tail.status == 200
            tail.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    wait_until(lambda: metric(tailor.url, "estrom_tailor_clients") == 0, what="clients released")
    wait_until(lambda: metric(tailor.url, "estrom_tailor_subscriptions") == 0, what="subscriptions released")
