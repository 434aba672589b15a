"""Fault tests: an engine, routers and services of their own, so faults stay here.

The session engine in tests/conftest.py serves every other test; stopping it
would fail them. These tests stop and restart an engine of their own (one for
the package, same data directory across restarts, so stored queries
survive), and a router of their own; a test that restarts a router has one
to itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from tests.real_stack import EngineHandle, RouterHandle, service_fixture
from tests.tcp_proxy import TCPProxy


@pytest.fixture(scope="package")
def fault_engine(stack: Stack) -> Iterator[EngineHandle]:
    """Never ESTROM_TEST_ENGINE_URL's engine: these tests stop and restart it."""
    handle = stack.start_engine("faults-engine")
    yield handle
    handle.stop()


@pytest.fixture(scope="package")
def fault_router(stack: Stack) -> Iterator[RouterHandle]:
    """The router of the fault tests that do not stop it (a crossbar start costs seconds)."""
    handle = stack.start_router("faults-router")
    yield handle
    handle.stop()


@pytest.fixture
def own_router(stack: Stack) -> Iterator[RouterHandle]:
    """A router for this test alone: stopping and restarting it disturbs nobody else."""
    handle = stack.start_router(f"faults-router-{uuid.uuid4().hex[:6]}")
    yield handle
    handle.stop()


beaters = service_fixture("beater", "fault_engine", "fault_router", "Beaters on the fault engine and router.")
tailors = service_fixture("tailor", "fault_engine", "fault_router", "Tailors on the fault engine and router.")


@pytest.fixture
def proxies() -> Iterator[list[TCPProxy]]:
    """Proxies made with ``tests.tcp_proxy.proxy_to``; all closed after the test."""
    made: list[TCPProxy] = []
    yield made
    for proxy in made:
        proxy.close()
