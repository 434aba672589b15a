"""Every parser against hostile input, on the real beater, tailor, router and engine.

Each answer must be a 2xx, or a 4xx with a JSON error body: never a 5xx,
never a dropped connection; every RPC error a ``com.estrom.error.*`` URI,
never ``wamp.error.runtime_error``. Afterwards both services still serve
(``tests/security/serving.py``). The number of inputs tried is printed at
the end of the run ("hostile inputs tried").
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from http.client import HTTPConnection
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from hypothesis import given

from common import contract
from devstack.wamp_client import EventSink, WampClient
from tests.hostile.conftest import TRIED, hostile_settings
from tests.hostile.strategies import CONTENT_TYPES, DSL, INDEX_NAMES, LUCENE, RAW_BODIES, TAIL_PARAMS
from tests.http_client import http, ingest
from tests.real_stack import EngineHandle
from tests.security.serving import assert_still_serving
from tests.waiting import wait_until

INDEX = f"hostile-{uuid.uuid4().hex[:8]}"
SID = re.compile(r"^[0-9a-f]{16}$")
ESTROM_ERRORS = (contract.INVALID_QUERY.uri, contract.INVALID_INDEX.uri)


def assert_json_answer(status: int, content_type: str, body: bytes) -> Any:
    """2xx, or 4xx with a JSON ``{"error", "reason"}``; never 5xx."""
    assert status < 500, (status, body[:500])
    if status >= 400:
        assert content_type.startswith("application/json"), (status, content_type, body[:200])
        parsed = json.loads(body)
        assert parsed["error"], parsed
        assert parsed["reason"], parsed
        return parsed
    return None


def percolated(engine: EngineHandle, sid: str) -> bool:
    """Whether the stored query is active as a search sees it: what percolation sees."""
    resp = http(
        "POST",
        f"{engine.url}/estrom-queries-{INDEX}/_search",
        json.dumps({"query": {"ids": {"values": [sid]}}}),
        {"content-type": "application/json"},
    )
    hits = resp.json()["hits"]["hits"] if resp.status == 200 else []
    return bool(hits) and hits[0]["_source"].get("estrom_active") is True


@pytest.fixture
def listener(wamp: WampClient, engine: EngineHandle) -> EventSink:
    """A match-all query on INDEX, subscribed for the whole test, so hostile documents are
    percolated, not skipped, however long the examples take.

    Unsubscribed, the beater's lifecycle sweep would deactivate it after a
    sweep interval, and a slow machine's later examples would test nothing.
    The subscription also reactivates it should a sweep have deactivated it
    before (between two tests of this module), asynchronously: wait until
    percolation sees it active. The ``wamp`` session, and so the
    subscription, ends with the test.
    """
    sid = wamp.call("com.estrom.register_query", INDEX, "*:*")
    sink = wamp.subscribe(f"docs-for-{sid}")
    wait_until(lambda: percolated(engine, sid), what="the match-all query percolated")
    return sink


@pytest.fixture
def listened_index(listener: EventSink) -> str:
    return INDEX


def test_ingest_bodies(beater: Any, listened_index: str, listener: EventSink) -> None:
    @hostile_settings()
    @given(body=RAW_BODIES, content_type=CONTENT_TYPES)
    def run(body: bytes, content_type: str) -> None:
        TRIED["ingest body"] += 1
        resp = http(
            "POST",
            f"{beater.url}/api/v0.1/ingest/{listened_index}",
            body,
            {"content-type": content_type} if content_type else {},
        )
        assert_json_answer(resp.status, resp.headers.get("content-type", ""), resp.body)
        if resp.status == 200:
            answer = resp.json()
            assert answer["accepted"] + len(answer["rejected"]) >= 1 or body.strip() in (b"[]",)

    run()
    # The match-all query was percolated up to the last example: a document now is a hit.
    marker = uuid.uuid4().hex
    resp = ingest(beater.url, listened_index, {"marker": marker})
    assert resp.status == 200, resp.body
    assert resp.json()["published"] >= 1, resp.body
    listener.wait_for_marker(marker)


def test_ingest_paths(beater: Any) -> None:
    """Index names in the path: anything, percent-encoded."""

    @hostile_settings()
    @given(name=INDEX_NAMES)
    def run(name: bytes) -> None:
        TRIED["ingest index name"] += 1
        path = "/api/v0.1/ingest/" + urllib.parse.quote_from_bytes(name, safe="")
        resp = http("POST", beater.url + path, b'{"a": 1}', {"content-type": "application/json"})
        assert_json_answer(resp.status, resp.headers.get("content-type", ""), resp.body)

    run()


def test_tail_parameters(tailor: Any, listened_index: str) -> None:
    host, port = tailor.host, tailor.port

    @hostile_settings()
    @given(params=TAIL_PARAMS)
    def run(params: list[tuple[str, bytes]]) -> None:
        TRIED["tail parameters"] += 1
        query = "&".join(f"{name}={urllib.parse.quote_from_bytes(value, safe='')}" for name, value in params)
        conn = HTTPConnection(host, port, timeout=60)
        try:
            conn.request("GET", "/api/v0.1/docs?" + query, headers={"last-event-id": "hostile-1"})
            resp = conn.getresponse()
            content_type = resp.getheader("content-type", "")
            if resp.status == 200:
                # A stream: it started properly; leaving is the client's right.
                assert content_type.startswith(
                    ("application/json", "application/x-ndjson", "text/event-stream")
                )
                return
            assert_json_answer(resp.status, content_type, resp.read())
        finally:
            conn.close()

    run()


def assert_registered_or_estrom_error(client: WampClient, query: Any) -> None:
    """A sid, or an estrom error; never a generic runtime error, never "unavailable" (all is up)."""
    error: ApplicationError | None = None
    try:
        sid = client.call("com.estrom.register_query", INDEX, query)
    except ApplicationError as err:
        error = err
    if error is None:
        assert SID.match(sid), sid
        return
    assert error.error in ESTROM_ERRORS, (error.error, error.args[:1], query)


@pytest.mark.parametrize(
    ("parser", "queries"), [("register_query string", LUCENE), ("register_query DSL", DSL)]
)
def test_register_query(wamp: WampClient, listened_index: str, parser: str, queries: Any) -> None:
    @hostile_settings()
    @given(query=queries)
    def run(query: Any) -> None:
        TRIED[parser] += 1
        assert_registered_or_estrom_error(wamp, query)

    run()


def test_both_services_still_serve(beater: Any, tailor: Any) -> None:
    assert_still_serving(beater.url, tailor.url)
