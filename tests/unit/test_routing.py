"""One decision per request, from its request line: the face that serves it, its body limit, its refusal."""

from __future__ import annotations

import pytest

from beater.http.routing import RoutePolicy
from common.config import Settings

SETTINGS = Settings.from_env({"ESTROM_INGEST_MAX_BODY": "1000", "ESTROM_BULK_MAX_BODY": "10000"})
SHARED = RoutePolicy(SETTINGS, own=True, engine_api=True)
OWN_ONLY = RoutePolicy(SETTINGS, own=True, engine_api=False)
BULK_ONLY = RoutePolicy(SETTINGS, own=False, engine_api=True)


@pytest.mark.parametrize(
    ("policy", "method", "path", "name", "rest", "max_body", "engine_api"),
    [
        (SHARED, b"POST", b"/api/v0.1/ingest/logs", "ingest", ("logs",), 1000, False),
        (SHARED, b"GET", b"/healthz", "healthz", (), 1000, False),
        (SHARED, b"GET", b"/metrics?x=1", "metrics", (), 1000, False),
        (SHARED, b"POST", b"/logs/_bulk?refresh=true", "bulk", ("logs", "_bulk"), 10000, True),
        (SHARED, b"PUT", b"/_index_template/t", "passthrough", ("_index_template", "t"), 1000, True),
        (OWN_ONLY, b"POST", b"/api/v0.1/ingest/logs", "ingest", ("logs",), 1000, False),
        (BULK_ONLY, b"POST", b"/healthz/_bulk", "bulk", ("healthz", "_bulk"), 10000, True),
    ],
)
def test_a_route_is_decided_with_its_body_limit(
    policy: RoutePolicy,
    method: bytes,
    path: bytes,
    name: str,
    rest: tuple[str, ...],
    max_body: int,
    engine_api: bool,
) -> None:
    route = policy.decide(method, path)
    assert (route.name, route.rest, route.max_body, route.engine_api) == (name, rest, max_body, engine_api)
    assert route.refusal is None
    assert (route.max_ratio is not None) == (name == "ingest")


@pytest.mark.parametrize(
    ("policy", "method", "path", "status", "reason", "engine_api"),
    [
        (SHARED, b"GET", b"/api/v0.1/ingest/logs", 405, "GET not allowed here", False),
        (SHARED, b"POST", b"/healthz/_bulk", 405, "POST not allowed here", False),
        (SHARED, b"GET", b"/_bulk", 405, "GET not allowed here", True),
        (
            SHARED,
            b"POST",
            b"/logs/_search",
            404,
            "no such endpoint (the engine's API is not served here)",
            True,
        ),
        (OWN_ONLY, b"POST", b"/_bulk", 404, "no such endpoint", True),
        (BULK_ONLY, b"GET", b"/metrics", 404, "no such endpoint (the engine's API is not served here)", True),
    ],
)
def test_a_refusal_is_decided_with_the_smaller_limit(
    policy: RoutePolicy, method: bytes, path: bytes, status: int, reason: str, engine_api: bool
) -> None:
    route = policy.decide(method, path)
    assert route.refusal is not None
    assert (route.refusal.status, route.refusal.reason) == (status, reason)
    assert (route.max_body, route.engine_api) == (1000, engine_api)


def test_an_unreadable_request_line_gets_the_least_a_listener_grants() -> None:
    small_bulk = Settings.from_env({"ESTROM_INGEST_MAX_BODY": "1000", "ESTROM_BULK_MAX_BODY": "500"})
    assert RoutePolicy(small_bulk, own=True, engine_api=True).smallest == 500
    assert RoutePolicy(small_bulk, own=True, engine_api=False).smallest == 1000
