"""Body limits by route on a port shared with the bulk API, and a draining beater's bulk refusals, in memory.

The beater's own sites (``beater.sites.shared_site`` and ``bulk_site``)
and a real Agent over a memory reactor (tests/memory/site_agent.py). The
bulk API forwards to an engine at an address of a second memory reactor
that never answers: a request that got that far (``forwarded``) went past
the body limit; one over its limit is answered 413 while its body arrives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from beater.http.routing import RoutePolicy, path_segments
from beater.matching.percolate import PercolateResult
from beater.sites import bulk_site, shared_site
from common.config import Settings
from tests.memory.beater_parts import BeaterParts
from tests.memory.site_agent import SiteAgent, client_for, result_of

#: Small limits: ingest's 1,000 bytes, bulk's 10,000; a body of 5,000 is between the two.
LIMITS = {"ESTROM_INGEST_MAX_BODY": "1000", "ESTROM_BULK_MAX_BODY": "10000"}
BETWEEN = b'{"index":{}}\n' + json.dumps({"pad": "x" * 4970}).encode() + b"\n"


async def match_nothing(index: str, docs: list[dict[str, Any]]) -> PercolateResult:
    return PercolateResult(matches=[[] for _ in docs])


class Beater(BeaterParts):
    """The beater's HTTP parts on memory reactors: one for its clients, one for the engine."""

    def __init__(self, own_listener: bool, draining: bool, env: dict[str, str]) -> None:
        self.agent = SiteAgent(None)  # type: ignore[arg-type]
        self.engine_reactor = MemoryReactorClock()
        settings = Settings.from_env({**LIMITS, **env})
        super().__init__(settings, self.agent.reactor, match_nothing, engine_reactor=self.engine_reactor)
        self.drain.draining = draining
        self.agent.site = (
            bulk_site(settings, self.bulk) if own_listener else shared_site(settings, self.api, self.bulk)
        )
        self.client = client_for(self.agent)

    def send(self, method: str, path: str, body: bytes) -> Deferred[Any]:
        headers = {"content-type": ["application/x-ndjson"]}
        return self.client.request(method, "http://beater:8081" + path, data=body, headers=headers)

    @property
    def forwarded(self) -> int:
        """Requests the bulk API sent on to the engine (connections opened to it)."""
        return len(self.engine_reactor.tcpClients)


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[Beater] = []

    def build(own_listener: bool = False, draining: bool = False, **env: str) -> Beater:
        beater = Beater(own_listener, draining, env)
        made.append(beater)
        return beater

    yield build
    for beater in made:
        beater.engine.close()


def answered(beater: Beater, d: Deferred[Any]) -> tuple[int, Any, dict[str, Any]]:
    response = result_of(d, beater.agent)
    return response.code, response.headers, json.loads(result_of(response.content(), beater.agent))


def pending(beater: Beater, d: Deferred[Any]) -> bool:
    beater.agent.flush()
    out: list[Any] = []
    d.addBoth(out.append)
    return not out


BULK_WRITES = [
    ("POST", "/_bulk"),
    ("PUT", "/_bulk"),
    ("POST", "/logs/_bulk"),
    ("POST", "/logs/_bulk?refresh=true&pipeline=p"),
    ("POST", "/logs/_bulk/"),
    ("POST", "/%5Fbulk"),  # Twisted decodes each segment: this is /_bulk
    ("POST", "/api/_bulk"),  # an index named "api": estrom's own routes are /api/v0.1/...
]
NOT_BULK = [
    # (method, path, what a small body gets there)
    ("POST", "/api/v0.1/ingest/logs", 503),  # estrom's ingest: no router session here
    ("POST", "/healthz/_bulk", 405),  # under estrom's own route: never the bulk API
    ("POST", "/metrics/_bulk", 405),
    ("PUT", "/_index_template/t", None),  # passed through to the engine: ingest's limit
    ("PUT", "/_ilm/policy/p", None),
    ("GET", "/_bulk", 405),
    ("POST", "/a/b/_bulk", 404),
    ("POST", "/_search/_bulk", 404),
    ("POST", "/logs/_search", 404),
    ("POST", "/logs/_bulk%2Fx", 404),
]


@pytest.mark.parametrize(("method", "path"), BULK_WRITES)
def test_bulk_writes_get_the_bulk_limit(make: Any, method: str, path: str) -> None:
    beater = make()
    d = beater.send(method, path, BETWEEN)
    assert pending(beater, d), "answered before the engine was asked"
    assert beater.forwarded == 1


#: On the bulk API's own listener estrom's routes are not served: /healthz/_bulk is a bulk write there.
NOT_BULK_ON_EITHER = [(False, *case) for case in NOT_BULK] + [
    (True, m, p, 404 if p.startswith("/api/") else small)
    for m, p, small in NOT_BULK
    if not p.startswith(("/healthz", "/metrics"))
]


@pytest.mark.parametrize(("own_listener", "method", "path", "small"), NOT_BULK_ON_EITHER)
def test_every_other_path_keeps_the_ingest_limit(
    make: Any, own_listener: bool, method: str, path: str, small: int | None
) -> None:
    beater = make(own_listener=own_listener)
    status, _, body = answered(beater, beater.send(method, path, BETWEEN))
    assert (status, body["error"]) == (413, "body_too_large")
    assert body["reason"] == "request body is over the limit of 1000 bytes"
    assert beater.forwarded == 0
    # The same path with a small body: the route it takes (a pass-through reaches the engine;
    # a template is checked first, so it names patterns a writer may write).
    small_body = b'{"index_patterns": ["logs-*"]}' if "template" in path else b"{}"
    d = beater.send(method, path, small_body)
    if small is None:
        assert pending(beater, d)
        assert beater.forwarded == 1
    else:
        assert answered(beater, d)[0] == small


@pytest.mark.parametrize("own_listener", [False, True])
def test_a_bulk_over_the_bulk_limit_is_413_while_it_arrives(make: Any, own_listener: bool) -> None:
    beater = make(own_listener=own_listener)
    status, _, body = answered(beater, beater.send("POST", "/logs/_bulk", BETWEEN * 3))
    assert (status, body["error"]) == (413, "body_too_large")
    assert body["reason"] == "request body is over the limit of 10000 bytes"
    assert beater.forwarded == 0


def test_a_bulk_limit_smaller_than_ingests_applies_to_bulk_only(make: Any) -> None:
    beater = make(ESTROM_INGEST_MAX_BODY="10000", ESTROM_BULK_MAX_BODY="1000")
    status, _, body = answered(beater, beater.send("POST", "/_bulk", BETWEEN))
    assert (status, body["reason"]) == (413, "request body is over the limit of 1000 bytes")
    status, _, body = answered(beater, beater.send("POST", "/api/v0.1/ingest/logs", BETWEEN))
    assert (status, body["error"]) == (503, "unavailable")  # past the limit: no router session here


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        (b"/_bulk", 10000),
        (b"/_bulk?x=/a/b", 10000),
        (b"/t/_bulk/", 10000),
        (b"/api/v0.1/ingest/_bulk", 1000),
        (b"/healthz/_bulk", 1000),
        (b"/t/x/_bulk", 1000),
    ],
)
def test_body_limit_by_request_line(path: bytes, limit: int) -> None:
    policy = RoutePolicy(Settings.from_env(LIMITS), own=True, engine_api=True)
    assert policy.decide(b"POST", path).max_body == limit
    assert policy.decide(b"GET", path).max_body == 1000


def test_path_segments_as_twisted_routes_them() -> None:
    assert path_segments(b"/a%2Fb/_bulk/?q=1") == ["a/b", "_bulk"]
    assert path_segments(b"/") == []


# --- draining (SIGTERM) ---------------------------------------------------------------------


def test_a_draining_beater_refuses_new_bulk_requests_with_503_and_closes(make: Any) -> None:
    beater = make(draining=True)
    status, headers, body = answered(beater, beater.send("POST", "/_bulk", b'{"index":{}}\n{"a":1}\n'))
    assert (status, body["error"]) == (503, "unavailable")
    assert "shutting down" in body["reason"]
    assert headers.getRawHeaders("retry-after") == [str(beater.settings.retry_after)]
    assert beater.agent.pumps[-1].serverIO.disconnecting  # Connection: close (the client keeps that header)
    assert beater.forwarded == 0
