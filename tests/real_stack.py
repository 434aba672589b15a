"""The test session's real processes: its secrets, the services' test settings, service factories.

Fixtures (``tests/conftest.py``, ``tests/faults/conftest.py``) start the
processes through ``devstack.stack.Stack``; tests import what they need to
name from here, never from a conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.handles import EngineHandle, RouterHandle, ServiceHandle
from devstack.router import REPO, generate_secrets
from devstack.settings import secret_var
from devstack.stack import Stack
from devstack.wamp_client import WampClient

__all__ = [
    "ARTIFACTS",
    "SECRETS",
    "TEST_SETTINGS",
    "EngineHandle",
    "RouterHandle",
    "ServiceHandle",
    "StartService",
    "admin_client",
    "service_factory",
    "service_fixture",
]

ARTIFACTS = REPO / "test-artifacts"

#: The router principals' secrets of this test session: every router gets all
#: of them, beaters and tailors their own, and ``admin_client`` the admin one.
SECRETS = generate_secrets()

#: What every beater and tailor of the tests runs with, unless a test says otherwise.
TEST_SETTINGS = {
    "ESTROM_LOG_LEVEL": "debug",
    # A test machine may be busy (2 cores, engine, router, browsers): a slow
    # engine answer there is not the outage the 5 s default is meant for.
    "ESTROM_ENGINE_TIMEOUT": "20",
}

#: ``start(engine_url=None, router_url=None, **settings)``: a ready beater or tailor.
StartService = Callable[..., ServiceHandle]


def admin_client(url: str) -> WampClient:
    """The admin principal on the router at ``url``: everything, the meta API included."""
    return WampClient(url, authid="admin", secret=SECRETS[secret_var("admin")])


def service_factory(
    stack: Stack, role: str, engine: EngineHandle, router: RouterHandle
) -> Iterator[StartService]:
    """Start ``role`` processes with their own settings (default: ``engine`` and ``router``);
    stop them all when the generator resumes (the end of a test or package)."""
    started: list[ServiceHandle] = []

    def start(engine_url: str | None = None, router_url: str | None = None, **settings: str) -> ServiceHandle:
        handle = stack.start_service(
            role, engine_url=engine_url or engine.url, router_url=router_url or router.service_url, **settings
        )
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


def service_fixture(role: str, engine: str, router: str, doc: str) -> Any:
    """A test-scoped fixture: a ``StartService`` for ``role`` against the fixtures named ``engine``
    and ``router``."""

    def fixture(stack: Stack, request: pytest.FixtureRequest) -> Iterator[StartService]:
        yield from service_factory(
            stack, role, request.getfixturevalue(engine), request.getfixturevalue(router)
        )

    fixture.__doc__ = doc
    return pytest.fixture(fixture)
