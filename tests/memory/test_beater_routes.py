"""The beater's HTTP face in memory: routing, body limits, decoding, clients that leave.

A real Site (the beater's own, with its request factory) and a real Agent
over a memory reactor (tests/memory/site_agent.py): milliseconds per test,
no process, no engine. What needs the engine or the router (percolation,
publishing) is tested in tests/integration; here the pipeline's percolate
and publish steps are in-memory functions and the router session is a
placeholder, so requests get as far as the queue.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred

from beater.matching.percolate import PercolateResult
from beater.sites import own_site, shared_site
from common.config import Settings
from tests.memory.beater_parts import BeaterParts
from tests.memory.site_agent import SiteAgent, client_for, result_of

BODY = json.dumps([{"a": 1}, {"a": 2}]).encode()


class Held:
    """Percolation that waits until the test releases it; matches nothing."""

    def __init__(self) -> None:
        self.gates: list[Deferred[None]] = []

    async def percolate(self, index: str, docs: list[dict[str, Any]]) -> PercolateResult:
        gate: Deferred[None] = Deferred()
        self.gates.append(gate)
        await gate
        return PercolateResult(matches=[[] for _ in docs])

    def release(self, clock: Any) -> None:
        clock.advance(1)  # the pipeline's linger timer: the batch goes to percolation
        for gate in self.gates:
            gate.callback(None)


class Parts(BeaterParts):
    def __init__(self, settings: Settings, agent_reactor: Any, joined: bool) -> None:
        self.held = Held()
        super().__init__(settings, agent_reactor, self.held.percolate, joined=joined)


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[Parts] = []

    def build(joined: bool = False, **env: str) -> tuple[Any, SiteAgent, Parts]:
        settings = Settings.from_env(env)
        agent = SiteAgent(None)  # type: ignore[arg-type]
        parts = Parts(settings, agent.reactor, joined)
        agent.site = shared_site(settings, parts.api, parts.bulk)
        made.append(parts)
        return client_for(agent), agent, parts

    yield build
    for parts in made:
        parts.engine.close()


def answer(d: Deferred[Any], agent: SiteAgent) -> tuple[int, dict[str, Any], Any]:
    response = result_of(d, agent)
    body = result_of(response.content(), agent)
    return response.code, response.headers, json.loads(body) if body else None


def post(client: Any, path: str, body: bytes, **headers: str) -> Deferred[Any]:
    hdrs = {"content-type": ["application/json"], **{k.replace("_", "-"): [v] for k, v in headers.items()}}
    return client.post("http://beater:8081" + path, data=body, headers=hdrs)


# --- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/logs/_search", 404, "not_found"),  # the engine's API is not served, bulk aside
        ("DELETE", "/logs", 404, "not_found"),
        ("GET", "/_bulk", 405, "method_not_allowed"),
        ("DELETE", "/_index_template/t", 405, "method_not_allowed"),
        ("GET", "/api/v0.1/ingest/logs", 405, "method_not_allowed"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("POST", "/api/v0.1/ingest", 404, "not_found"),
        ("POST", "/api/v0.1/ingest/a/b", 404, "not_found"),
        ("POST", "/api/v0.1/ingest/Upper", 400, "invalid_index"),
        ("POST", "/api/v0.1/ingest/logs", 503, "unavailable"),  # read the body, no router session
    ],
)
def test_routing(make: Any, method: str, path: str, status: int, code: str) -> None:
    client, agent, _ = make()
    d = client.request(
        method, "http://beater:8081" + path, data=BODY, headers={"content-type": ["application/json"]}
    )
    got, headers, body = answer(d, agent)
    assert (got, body["error"]) == (status, code)
    assert headers.getRawHeaders("content-type") == ["application/json"]


def test_metrics_route_with_stub_treq(make: Any) -> None:
    # The routing resource alone, in treq's own StubTreq.
    _, _, parts = make()
    stub = StubTreq(own_site(parts.settings, parts.api).resource)
    response = result_of(stub.get("http://beater/metrics"))
    text = result_of(stub.content(response)).decode()
    assert response.code == 200
    assert "# TYPE estrom_beater_ingest_requests_total counter" in text


# --- limits and decoding -------------------------------------------------------------------


def test_body_over_the_limit_is_413_while_it_arrives(make: Any) -> None:
    client, agent, _ = make(ESTROM_INGEST_MAX_BODY="1000")
    status, _, body = answer(post(client, "/api/v0.1/ingest/logs", b"[" + b" " * 2000 + b"]"), agent)
    assert (status, body["error"]) == (413, "body_too_large")


def test_gzip_bomb_is_413_on_its_decoded_size(make: Any) -> None:
    client, agent, _ = make(ESTROM_INGEST_MAX_BODY="100000")
    bomb = gzip.compress(b"[" + b" " * 20_000_000 + b"]")
    assert len(bomb) < 100_000
    status, _, body = answer(post(client, "/api/v0.1/ingest/logs", bomb, content_encoding="gzip"), agent)
    assert (status, body["error"]) == (413, "body_too_large")
    assert "decoded request body is over the limit of 100000 bytes" in body["reason"]


def test_gzip_body_is_read(make: Any) -> None:
    client, agent, parts = make(joined=True)
    d = post(client, "/api/v0.1/ingest/logs", gzip.compress(BODY), content_encoding="gzip")
    agent.flush()
    assert parts.pipeline.queued == 2  # both documents decoded and queued
    parts.held.release(agent.reactor)
    status, _, body = answer(d, agent)
    assert (status, body) == (200, {"accepted": 2, "published": 0, "rejected": []})


@pytest.mark.parametrize(
    ("encoding", "data", "status", "code"),
    [
        ("br", BODY, 415, "unsupported_encoding"),
        ("gzip, br", BODY, 415, "unsupported_encoding"),
        ("gzip", b"not gzip", 400, "unreadable_body"),
        ("gzip", gzip.compress(BODY)[:-6], 400, "unreadable_body"),
    ],
)
def test_bad_encodings(make: Any, encoding: str, data: bytes, status: int, code: str) -> None:
    client, agent, parts = make(joined=True)
    got, _, body = answer(post(client, "/api/v0.1/ingest/logs", data, content_encoding=encoding), agent)
    assert (got, body["error"]) == (status, code)
    assert parts.pipeline.queued == 0
    assert (
        parts.metrics.value("ingest_requests_total", outcome=code.replace("unreadable_body", "bad_request"))
        == 1
    )


@pytest.mark.parametrize(
    ("draining", "reason"),
    [
        (False, "not connected to the router; retry later"),
        (True, "the beater is shutting down; retry (another beater, or this one restarted)"),
    ],
)
def test_a_condition_that_clears_is_503_with_the_configured_retry_after(
    make: Any, draining: bool, reason: str
) -> None:
    client, agent, parts = make(ESTROM_RETRY_AFTER="7")
    parts.drain.draining = draining
    status, headers, body = answer(post(client, "/api/v0.1/ingest/logs", BODY), agent)
    assert (status, body) == (503, {"error": "unavailable", "reason": reason})
    assert headers.getRawHeaders("retry-after") == ["7"]
    assert parts.metrics.value("ingest_requests_total", outcome="unavailable") == 1
    assert parts.pipeline.queued == 0


def test_ingest_token(make: Any) -> None:
    client, agent, _ = make(ESTROM_INGEST_TOKEN="s3cret")
    for auth in (None, "Bearer wrong", "Basic s3cret", "Bearer s3cr\u00e9t"):
        extra = {"authorization": auth} if auth else {}
        status, headers, body = answer(post(client, "/api/v0.1/ingest/logs", BODY, **extra), agent)
        assert (status, body["error"]) == (401, "unauthorized")
        assert headers.getRawHeaders("www-authenticate") == ["Bearer"]
    status, _, body = answer(
        post(client, "/api/v0.1/ingest/logs", BODY, authorization="Bearer s3cret"), agent
    )
    assert (status, body["error"]) == (503, "unavailable")  # past the check; no router here


# --- a client that goes away ---------------------------------------------------------------


def test_client_gone_cancels_the_handler_and_nothing_is_lost(make: Any) -> None:
    client, agent, parts = make(joined=True)
    d = post(client, "/api/v0.1/ingest/logs", BODY)
    agent.flush()
    assert parts.pipeline.queued == 2
    assert parts.drain.in_flight == 1
    agent.drop_clients()
    d.addErrback(lambda _: None)
    # The handler was cancelled (notifyFinish), it stopped waiting...
    assert parts.drain.in_flight == 0
    assert parts.metrics.value("ingest_requests_total", outcome="client_gone") == 1
    # ...and the documents still go through the pipeline.
    parts.held.release(agent.reactor)
    assert parts.pipeline.queued == 0
    assert parts.pipeline.stats["documents"] == 2


# --- the bulk API's own refusals (before anything reaches the engine) ------------------------


def test_bulk_needs_credentials_where_the_ingest_token_is_set(make: Any) -> None:
    client, agent, _ = make(ESTROM_INGEST_TOKEN="s3cret")
    status, headers, body = answer(post(client, "/_bulk", b'{"index":{}}\n{"a":1}\n'), agent)
    assert (status, body["error"]) == (401, "unauthorized")
    assert headers.getRawHeaders("www-authenticate") == ["Bearer"]


@pytest.mark.parametrize(
    ("env", "data", "encoding", "status", "code"),
    [
        ({}, b'{"index":{}}\n{"a":1}\n', "br", 415, "unsupported_encoding"),
        ({}, b"not gzip", "gzip", 400, "unreadable_body"),
        ({"ESTROM_BULK_MAX_BODY": "1000"}, gzip.compress(b" " * 5000), "gzip", 413, "body_too_large"),
    ],
)
def test_bulk_body_refusals(make: Any, env: dict, data: bytes, encoding: str, status: int, code: str) -> None:
    client, agent, parts = make(**env)
    got, _, body = answer(post(client, "/logs/_bulk", data, content_encoding=encoding), agent)
    assert (got, body["error"]) == (status, code)
    assert parts.metrics.value("bulk_requests_total", status=str(status)) == 1


def test_ingest_keeps_its_own_limit_on_a_port_shared_with_bulk(make: Any) -> None:
    client, agent, _ = make(ESTROM_INGEST_MAX_BODY="1000")
    bomb = gzip.compress(b"[" + b" " * 5000 + b"]")
    status, _, body = answer(post(client, "/api/v0.1/ingest/logs", bomb, content_encoding="gzip"), agent)
    assert (status, body["error"]) == (413, "body_too_large")
    assert "decoded request body is over the limit of 1000 bytes" in body["reason"]
