"""The real parts are what we say they are: an engine with its percolator, a clean router."""

from __future__ import annotations

import pytest
from twisted.internet import reactor

from common.engine import Engine
from devstack.wamp_client import on_reactor
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
    client = Engine(engine.url, timeout=5, concurrency=1, reactor=reactor)
    try:
        version = on_reactor(client.check)
    finally:
        client.close()
    assert version[0] == 7
    assert version >= (7, 10, 0)


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
