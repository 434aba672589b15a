"""A tailor process beside the session's engine, router and beater.

``tailor`` is shared by the whole session (default settings, fast heartbeat
left at its default); ``start_tailor`` makes tailors with their own settings
(small pending bound, short history, another router), stopped after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EngineHandle, RouterHandle, ServiceHandle, StartService, service_env, start_service


@pytest.fixture(scope="session")
def tailor(
    workdir: Path, engine: EngineHandle, router: RouterHandle, beater: ServiceHandle
) -> Iterator[ServiceHandle]:
    handle = start_service(workdir, "tailor", service_env(engine.url, router.url))
    yield handle
    handle.stop()


@pytest.fixture
def start_tailor(workdir: Path, engine: EngineHandle, router: RouterHandle) -> Iterator[StartService]:
    """Factory for tailors with their own settings; all stopped after the test."""
    started: list[ServiceHandle] = []

    def start(engine_url: str | None = None, router_url: str | None = None, **env: str) -> ServiceHandle:
        handle = start_service(
            workdir, "tailor", service_env(engine_url or engine.url, router_url or router.url, **env)
        )
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
