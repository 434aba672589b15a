"""Fault tests: an engine, routers and services of their own, so faults stay here.

The session engine in tests/conftest.py serves every other test; stopping it
would fail them. These tests stop and restart an engine of their own (one for
the package, same data directory across restarts, so stored queries
survive), and a router of their own; a test that restarts a router has one
to itself.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.engine import EngineNode, ensure_engine
from devstack.processes import free_port
from tests.conftest import EngineHandle, RouterHandle, StartService, _service_factory, start_router
from tests.tcp_proxy import TCPProxy


@pytest.fixture(scope="package")
def fault_engine(workdir: Path) -> Iterator[EngineHandle]:
    node = EngineNode(
        home=ensure_engine(),
        state_dir=workdir / "faults-engine",
        http_port=free_port(),
        transport_port=free_port(),
        heap=os.environ.get("ESTROM_TEST_ENGINE_HEAP", "512m"),
    )
    node.start(log_path=workdir / "faults-engine.log")
    try:
        node.wait_ready(timeout=180)
        yield EngineHandle(node.url, node)
    finally:
        node.stop()


@pytest.fixture(scope="package")
def fault_router(workdir: Path) -> Iterator[RouterHandle]:
    """The router of the fault tests that do not stop it (a crossbar start costs seconds)."""
    handle = start_router(workdir, "faults-router")
    yield handle
    handle.stop()


@pytest.fixture
def own_router(workdir: Path) -> Iterator[RouterHandle]:
    """A router for this test alone: stopping and restarting it disturbs nobody else."""
    handle = start_router(workdir, f"faults-router-{uuid.uuid4().hex[:6]}")
    yield handle
    handle.stop()


@pytest.fixture
def beaters(workdir: Path, fault_engine: EngineHandle, fault_router: RouterHandle) -> Iterator[StartService]:
    yield from _service_factory("beater", workdir, fault_engine, fault_router)


@pytest.fixture
def tailors(workdir: Path, fault_engine: EngineHandle, fault_router: RouterHandle) -> Iterator[StartService]:
    yield from _service_factory("tailor", workdir, fault_engine, fault_router)


@pytest.fixture
def proxies() -> Iterator[list[TCPProxy]]:
    """Proxies made with ``proxy_to``; all closed after the test."""
    made: list[TCPProxy] = []
    yield made
    for proxy in made:
        proxy.close()


def proxy_to(proxies: list[TCPProxy], url: str) -> TCPProxy:
    """A TCP proxy in front of ``http://host:port`` or ``ws://host:port/ws``."""
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    proxy = TCPProxy(host, int(port))
    proxies.append(proxy)
    return proxy
