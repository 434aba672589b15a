"""The router's ``GET /metrics`` (real router, beater, engine): refusals per limit, the largest users.

Read with prometheus_client's own parser (devstack/metrics_page.py), as
Prometheus reads it. Each test has an address of its own (127.0.0.x) and
compares before and after, so the other tests of the module stack do not
change what it sees.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pytest
from autobahn.wamp.exception import ApplicationError

from devstack.metrics_page import metric, samples
from tests.readers.stack import LOGS, PUBLIC, SUBSCRIPTIONS, ReadersStack, from_address
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

PREFIX = "estrom_router_"
QUOTA = "com.estrom.error.quota_exceeded"


def page(stack: ReadersStack) -> str:
    return f"http://127.0.0.1:{stack.router.port}"


def test_the_router_serves_prometheus_metrics(limited: ReadersStack) -> None:
    with urllib.request.urlopen(page(limited) + "/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/plain")
    found = samples(page(limited))
    assert found["process_resident_memory_bytes"] > 0  # the router worker's own process
    assert "estrom_router_reader_subscriptions" in found
    assert "estrom_router_reader_sessions" in found


def test_refusals_per_limit_and_the_largest_users(limited: ReadersStack) -> None:
    base = page(limited)
    refusals = PREFIX + "reader_refusals_total"
    quota_before = metric(base, refusals, reason="ESTROM_QUOTA_SUBSCRIPTIONS")
    denied_before = metric(base, refusals, reason="not_authorized")
    timed_before = metric(base, PREFIX + "authorize_seconds_count", action="subscribe")
    address = "127.0.0.5"
    key = f"anonymous@{address}"
    client = from_address(limited.router.url, limited.router.port, address)
    try:
        for i in range(SUBSCRIPTIONS):
            sid = client.call("com.estrom.register_query", f"flood-metrics-{i % 3}", f"m:{uuid.uuid4().hex}")
            client.subscribe(f"docs-for-{sid}")
        with pytest.raises(ApplicationError) as exc:
            client.call("com.estrom.register_query", "flood-metrics-0", "m:one-more")
        assert exc.value.error == QUOTA
        with pytest.raises(ApplicationError):
            client.call("com.estrom.register_query", LOGS, "level:error")  # anonymous may not read logs-*
        assert metric(base, PREFIX + "reader_top_subscriptions", key=key) == SUBSCRIPTIONS
        assert metric(base, refusals, reason="ESTROM_QUOTA_SUBSCRIPTIONS") == quota_before + 1
        assert metric(base, refusals, reason="not_authorized") == denied_before + 1
        assert (
            metric(base, PREFIX + "authorize_seconds_count", action="subscribe")
            >= timed_before + SUBSCRIPTIONS
        )
        assert metric(base, PREFIX + "reader_subscriptions") >= SUBSCRIPTIONS
    finally:
        client.close()
    # Its subscriptions end with its session: it leaves the largest users.
    wait_until(
        lambda: metric(base, PREFIX + "reader_top_subscriptions", key=key) == 0,
        20,
        "the session's subscriptions released",
    )


def test_a_refused_subscription_is_counted(rstack: ReadersStack) -> None:
    base = page(rstack)
    refusals = PREFIX + "reader_refusals_total"
    before = metric(base, refusals, reason="not_authorized")
    anonymous = rstack.client(None)
    try:
        with pytest.raises(ApplicationError):
            anonymous.subscribe("docs-for-" + uuid.uuid4().hex[:16])  # no such sid
        sid = anonymous.call("com.estrom.register_query", PUBLIC, "level:metrics")
        anonymous.subscribe(f"docs-for-{sid}")
    finally:
        anonymous.close()
    assert metric(base, refusals, reason="not_authorized") == before + 1


def test_only_get_is_served(rstack: ReadersStack) -> None:
    request = urllib.request.Request(page(rstack) + "/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=10)
    assert exc.value.code == 405
