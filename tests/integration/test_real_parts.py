"""The real parts are what we say they are: an engine with its percolator, a clean router."""

from __future__ import annotations

import os

import pytest
from twisted.internet import reactor

import devstack.stack
from common.engine import Engine
from devstack.engine import DEFAULT_DIST, parse_dist
from devstack.processes import free_port, listens_in_group
from devstack.stack import Stack
from devstack.wamp_client import ConnectFailed, WampClient, on_reactor
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle, RouterHandle


def test_engine_has_the_percolator_module(engine: EngineHandle) -> None:
    nodes = engine_request(engine.url, "GET", "/_nodes/_local/plugins")["nodes"]
    modules = {m["name"] for node in nodes.values() for m in node["modules"]}
    assert "percolator" in modules


def test_percolate_with_documents_reports_slots(engine: EngineHandle, index: str) -> None:
    engine_request(
        engine.url,
        "PUT",
        f"/{index}",
        {"mappings": {"properties": {"q": {"type": "percolator"}, "msg": {"type": "text"}}}},
    )
    engine_request(engine.url, "PUT", f"/{index}/_doc/1?refresh=true", {"q": {"match": {"msg": "boom"}}})
    resp = engine_request(
        engine.url,
        "POST",
        f"/{index}/_search",
        {
            "query": {
                "percolate": {"field": "q", "documents": [{"msg": "calm"}, {"msg": "boom"}, {"msg": "boom!"}]}
            }
        },
    )
    hits = resp["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1"]
    assert hits[0]["fields"]["_percolator_document_slot"] == [1, 2]


def test_client_and_engine_versions_fit(engine: EngineHandle) -> None:
    client = Engine(engine.url, timeout=30, concurrency=1, reactor=reactor)  # a busy machine's engine
    try:
        server = on_reactor(client.check)
    finally:
        client.close()
    # The engine the test run provisioned (ESTROM_ENGINE_DIST), found as that family and version.
    expected = parse_dist(os.environ.get("ESTROM_ENGINE_DIST") or DEFAULT_DIST)
    if engine.node is not None:
        assert (server.family, ".".join(map(str, server.version))) == (expected.family, expected.version)
    assert server.tested or engine.node is None
    assert client.family == server.family


def test_engine_runs_as_unprivileged_user(engine: EngineHandle) -> None:
    if engine.node is None or engine.node.process is None:
        pytest.skip("external engine")
    import os
    import subprocess

    java = subprocess.run(
        ["pgrep", "-g", str(os.getpgid(engine.node.process.pid)), "-x", "java"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert java, "no java process in the engine's process group"
    owner = os.stat(f"/proc/{java[0]}").st_uid
    assert owner != 0


def test_router_serves_page_and_starts_without_tracebacks(router: RouterHandle) -> None:
    page = http("GET", f"http://127.0.0.1:{router.port}/")
    assert page.status == 200
    assert b"estrom" in page.body
    log = router.process.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    assert "NumPy" not in log


def test_a_router_handed_a_port_another_router_holds_starts_again_on_a_free_one(
    stack: Stack, router: RouterHandle, index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel test runs can be handed the same free port: the later router dies, while the
    earlier one answers on that port with the same page. Taking that for "started" sent a CI
    run's test to a router that was gone a moment later."""
    ports = iter([router.port])
    monkeypatch.setattr(devstack.stack, "free_port", lambda: next(ports, None) or free_port())
    twin = stack.start_router(f"twin-{index}")
    try:
        assert twin.port != router.port
        assert listens_in_group(twin.port, twin.pid)
        assert not listens_in_group(router.port, twin.pid)
        assert listens_in_group(router.port, router.pid)
        assert http("GET", f"http://127.0.0.1:{twin.port}/").status == 200
    finally:
        twin.stop()


def test_a_client_that_never_joins_names_the_cause() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"  # nobody listens there
    with pytest.raises(ConnectFailed, match="ConnectionRefusedError"):
        WampClient(url, timeout=5)
